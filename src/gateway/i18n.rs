//! The two languages of participant-facing text, chosen from the browser's
//! `Accept-Language`. Server-rendered pages and the web client use the same table: the
//! join page embeds it as JSON for the script.

use serde::Serialize;

/// A language participants see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// English (the default).
    En,
    /// German.
    De,
}

impl Lang {
    /// The BCP 47 tag for `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    /// The language of a request: the first of German or English in the
    /// `Accept-Language` header by quality (ties by order); English if it names neither.
    pub fn negotiate(accept_language: Option<&str>) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for item in accept_language.unwrap_or_default().split(',') {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = range.split('-').next().unwrap_or_default();
            let lang = match primary {
                "de" => Lang::De,
                "en" => Lang::En,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, l)| l)
    }

    /// Every participant-facing text in this language.
    pub fn strings(self) -> &'static Strings {
        match self {
            Lang::En => &EN,
            Lang::De => &DE,
        }
    }
}

/// Participant-facing texts. `{n}`, `{name}` and `{time}` are filled in where used.
#[derive(Debug, Serialize)]
pub struct Strings {
    pub not_found_title: &'static str,
    pub not_found_text: &'static str,
    pub too_many_title: &'static str,
    pub too_many_text: &'static str,
    pub starting_title: &'static str,
    pub starting_text: &'static str,
    pub ended_title: &'static str,
    pub ended_text: &'static str,
    pub full_title: &'static str,
    pub full_text: &'static str,
    pub waiting_title: &'static str,
    pub waiting_starts: &'static str,
    pub waiting_soon: &'static str,
    pub waiting_auto: &'static str,
    pub waiting_countdown: &'static str,
    pub privacy: &'static str,
    pub privacy_title: &'static str,
    pub name_label: &'static str,
    pub camera: &'static str,
    pub microphone: &'static str,
    pub none: &'static str,
    pub join: &'static str,
    pub leave: &'static str,
    pub mute: &'static str,
    pub unmute: &'static str,
    pub camera_off: &'static str,
    pub camera_on: &'static str,
    pub view_speaker: &'static str,
    pub view_grid: &'static str,
    pub page_prev: &'static str,
    pub page_next: &'static str,
    pub page_of: &'static str,
    pub chat: &'static str,
    pub chat_placeholder: &'static str,
    pub send: &'static str,
    pub people: &'static str,
    pub you: &'static str,
    pub muted: &'static str,
    pub err_permission: &'static str,
    pub err_no_devices: &'static str,
    pub err_name: &'static str,
    pub err_lost: &'static str,
    pub err_gone: &'static str,
    pub err_media: &'static str,
    pub err_rate: &'static str,
    pub rejoin: &'static str,
    pub left: &'static str,
    pub peer_joined: &'static str,
    pub peer_left: &'static str,
    pub alone: &'static str,
    pub muted_by_host: &'static str,
    pub camera_off_by_host: &'static str,
    pub mute_lifted: &'static str,
    pub err_forbidden: &'static str,
    pub locked_notice: &'static str,
    pub unlocked_notice: &'static str,
    pub locked_title: &'static str,
    pub locked_text: &'static str,
    pub removed_title: &'static str,
    pub removed_text: &'static str,
    pub host: &'static str,
    pub hand_raised: &'static str,
    pub hand_notice: &'static str,
    pub wait_lobby_title: &'static str,
    pub wait_lobby_text: &'static str,
    pub wait_host_title: &'static str,
    pub wait_host_text: &'static str,
    pub refused_title: &'static str,
    pub refused_text: &'static str,
    pub raise_hand: &'static str,
    pub lower_hand: &'static str,
    pub lobby_heading: &'static str,
    pub knock_notice: &'static str,
    pub admit: &'static str,
    pub refuse: &'static str,
    pub host_mute: &'static str,
    pub host_camera_off: &'static str,
    pub remove: &'static str,
    pub remove_confirm: &'static str,
    pub mute_all: &'static str,
    pub lift_all: &'static str,
    pub lock: &'static str,
    pub unlock: &'static str,
    pub end_all: &'static str,
    pub end_confirm: &'static str,
    pub host_actions: &'static str,
    pub host_you: &'static str,
    pub allow_unmute: &'static str,
    pub invite: &'static str,
    pub invite_copied: &'static str,
    pub share: &'static str,
    pub stop_share: &'static str,
    pub screen_of: &'static str,
    pub share_notice: &'static str,
    pub share_busy: &'static str,
    pub people_toggle: &'static str,
    pub chat_unread: &'static str,
    pub devices: &'static str,
    pub speaker: &'static str,
    pub close: &'static str,
    pub device_failed: &'static str,
    pub fullscreen: &'static str,
    pub exit_fullscreen: &'static str,
    pub join_muted: &'static str,
    pub join_camera_off: &'static str,
    pub mic_level: &'static str,
    pub quality_good: &'static str,
    pub quality_fair: &'static str,
    pub quality_poor: &'static str,
    pub quality_detail: &'static str,
    pub weak_connection: &'static str,
    pub media_interrupted: &'static str,
    pub pin: &'static str,
    pub unpin: &'static str,
}

/// English.
pub static EN: Strings = Strings {
    not_found_title: "Not found",
    not_found_text: "This link does not lead to a meeting. Check that you copied all of it.",
    too_many_title: "Too many attempts",
    too_many_text: "Please wait a minute, then try again.",
    starting_title: "One moment, please",
    starting_text: "The service is starting. Please reload this page in a few seconds.",
    ended_title: "This meeting has ended",
    ended_text: "Thank you for taking part.",
    full_title: "This meeting is full",
    full_text: "All {n} places are taken. Please try again later.",
    waiting_title: "The meeting has not started yet",
    waiting_starts: "It starts on {time}.",
    waiting_soon: "It starts in a moment.",
    waiting_auto: "Keep this page open: when the meeting starts, it turns into the meeting's entrance. There you enter your name and join.",
    waiting_countdown: "Starts {rel}.",
    privacy: "Privacy",
    privacy_title: "Privacy notice",
    name_label: "Your name",
    camera: "Camera",
    microphone: "Microphone",
    none: "None",
    join: "Join",
    leave: "Leave",
    mute: "Mute",
    unmute: "Unmute",
    camera_off: "Camera off",
    camera_on: "Camera on",
    view_speaker: "Speaker view",
    view_grid: "Grid view",
    page_prev: "Previous page",
    page_next: "Next page",
    page_of: "Page {n} of {m}",
    chat: "Chat",
    chat_placeholder: "Write a message",
    send: "Send",
    people: "People here",
    you: "you",
    muted: "muted",
    err_permission: "Access to the camera or microphone was denied. Allow it in your browser's settings for this site and reload, or join without them.",
    err_no_devices: "No camera or microphone was found. You can still join to listen and chat.",
    err_name: "Please enter a name (up to 64 characters).",
    err_lost: "The connection was lost. Reconnecting…",
    err_gone: "The connection could not be restored.",
    err_media: "Audio and video could not be connected. A firewall may block them.",
    err_rate: "Slow down: that message was not sent.",
    rejoin: "Join again",
    left: "You left the meeting.",
    peer_joined: "{name} joined",
    peer_left: "{name} left",
    alone: "Nobody else is here yet.",
    muted_by_host: "A host muted your microphone.",
    camera_off_by_host: "A host switched your camera off.",
    mute_lifted: "A host lifted your mute.",
    err_forbidden: "That is not allowed in this meeting.",
    locked_notice: "A host locked the meeting: nobody else can join.",
    unlocked_notice: "A host unlocked the meeting.",
    locked_title: "This meeting is locked",
    locked_text: "A host has locked the meeting. Ask them to unlock it.",
    removed_title: "You were removed",
    removed_text: "A host removed you from the meeting.",
    host: "host",
    hand_raised: "hand raised",
    hand_notice: "{name} raised a hand",
    wait_lobby_title: "Waiting to be let in",
    wait_lobby_text: "A host will let you in. Keep this page open.",
    wait_host_title: "Waiting for the host",
    wait_host_text: "The meeting begins when a host joins. Keep this page open.",
    refused_title: "You were not let in",
    refused_text: "A host did not let you into the meeting.",
    raise_hand: "Raise hand",
    lower_hand: "Lower hand",
    lobby_heading: "Waiting to join",
    knock_notice: "{name} is waiting to join",
    admit: "Let in",
    refuse: "Turn away",
    host_mute: "Mute",
    host_camera_off: "Camera off",
    remove: "Remove",
    remove_confirm: "Remove {name} from the meeting? They cannot join again from this browser.",
    mute_all: "Mute everyone",
    lift_all: "Let everyone unmute",
    lock: "Lock meeting",
    unlock: "Unlock meeting",
    end_all: "End for all",
    end_confirm: "End the meeting for everyone?",
    host_actions: "Host controls",
    host_you: "You run this meeting.",
    allow_unmute: "Allow unmute",
    invite: "Copy invite link",
    invite_copied: "Invite link copied.",
    share: "Share screen",
    stop_share: "Stop sharing",
    screen_of: "Screen of {name}",
    share_notice: "{name} shares a screen",
    share_busy: "Someone else is sharing a screen.",
    people_toggle: "People",
    chat_unread: "{n} unread",
    devices: "Devices",
    speaker: "Speaker",
    close: "Close",
    device_failed: "That device could not be used.",
    fullscreen: "Full screen",
    exit_fullscreen: "Exit full screen",
    join_muted: "Join with microphone off",
    join_camera_off: "Join with camera off",
    mic_level: "Microphone level",
    quality_good: "Connection good",
    quality_fair: "Connection fair",
    quality_poor: "Connection poor",
    quality_detail: "{loss} % lost, {fps} frames/s, {rtt} ms",
    weak_connection: "Your connection is weak: others may see and hear you badly.",
    media_interrupted: "The media connection is interrupted. Trying again…",
    pin: "Show {name} large",
    unpin: "Stop showing {name} large",
};

/// German.
pub static DE: Strings = Strings {
    not_found_title: "Nicht gefunden",
    not_found_text: "Dieser Link führt zu keinem Meeting. Prüfen Sie, ob Sie ihn vollständig kopiert haben.",
    too_many_title: "Zu viele Versuche",
    too_many_text: "Bitte warten Sie eine Minute und versuchen Sie es dann erneut.",
    starting_title: "Einen Moment, bitte",
    starting_text: "Der Dienst startet gerade. Bitte laden Sie diese Seite in einigen Sekunden neu.",
    ended_title: "Dieses Meeting ist beendet",
    ended_text: "Danke für Ihre Teilnahme.",
    full_title: "Dieses Meeting ist voll",
    full_text: "Alle {n} Plätze sind belegt. Bitte versuchen Sie es später erneut.",
    waiting_title: "Das Meeting hat noch nicht begonnen",
    waiting_starts: "Es beginnt am {time}.",
    waiting_soon: "Es beginnt gleich.",
    waiting_auto: "Lassen Sie diese Seite geöffnet: Wenn das Meeting beginnt, wird sie zum Eingang des Meetings. Dort geben Sie Ihren Namen ein und treten bei.",
    waiting_countdown: "Beginnt {rel}.",
    privacy: "Datenschutz",
    privacy_title: "Datenschutzhinweis",
    name_label: "Ihr Name",
    camera: "Kamera",
    microphone: "Mikrofon",
    none: "Keine",
    join: "Beitreten",
    leave: "Verlassen",
    mute: "Stummschalten",
    unmute: "Stummschaltung aufheben",
    camera_off: "Kamera aus",
    camera_on: "Kamera an",
    view_speaker: "Sprecheransicht",
    view_grid: "Rasteransicht",
    page_prev: "Vorherige Seite",
    page_next: "Nächste Seite",
    page_of: "Seite {n} von {m}",
    chat: "Chat",
    chat_placeholder: "Nachricht schreiben",
    send: "Senden",
    people: "Anwesend",
    you: "Sie",
    muted: "stumm",
    err_permission: "Der Zugriff auf Kamera oder Mikrofon wurde verweigert. Erlauben Sie ihn in den Einstellungen Ihres Browsers für diese Seite und laden Sie neu, oder treten Sie ohne bei.",
    err_no_devices: "Es wurde keine Kamera und kein Mikrofon gefunden. Sie können trotzdem beitreten, um zuzuhören und zu chatten.",
    err_name: "Bitte geben Sie einen Namen ein (höchstens 64 Zeichen).",
    err_lost: "Die Verbindung ist unterbrochen. Neuer Verbindungsversuch …",
    err_gone: "Die Verbindung konnte nicht wiederhergestellt werden.",
    err_media: "Ton und Bild konnten nicht verbunden werden. Möglicherweise blockiert eine Firewall sie.",
    err_rate: "Langsamer, bitte: Diese Nachricht wurde nicht gesendet.",
    rejoin: "Erneut beitreten",
    left: "Sie haben das Meeting verlassen.",
    peer_joined: "{name} ist beigetreten",
    peer_left: "{name} hat das Meeting verlassen",
    alone: "Noch ist niemand sonst hier.",
    muted_by_host: "Die Moderation hat Ihr Mikrofon stummgeschaltet.",
    camera_off_by_host: "Die Moderation hat Ihre Kamera ausgeschaltet.",
    mute_lifted: "Die Moderation hat die Stummschaltung aufgehoben.",
    err_forbidden: "Das ist in diesem Meeting nicht erlaubt.",
    locked_notice: "Die Moderation hat das Meeting gesperrt: Niemand sonst kann beitreten.",
    unlocked_notice: "Die Moderation hat das Meeting entsperrt.",
    locked_title: "Dieses Meeting ist gesperrt",
    locked_text: "Die Moderation hat das Meeting gesperrt. Bitten Sie die Moderation, es zu entsperren.",
    removed_title: "Sie wurden entfernt",
    removed_text: "Die Moderation hat Sie aus dem Meeting entfernt.",
    host: "Moderation",
    hand_raised: "meldet sich",
    hand_notice: "{name} meldet sich",
    wait_lobby_title: "Warten auf Einlass",
    wait_lobby_text: "Die Moderation lässt Sie gleich herein. Lassen Sie diese Seite geöffnet.",
    wait_host_title: "Warten auf die Moderation",
    wait_host_text: "Das Meeting beginnt, sobald die Moderation beitritt. Lassen Sie diese Seite geöffnet.",
    refused_title: "Sie wurden nicht hereingelassen",
    refused_text: "Die Moderation hat Sie nicht in das Meeting gelassen.",
    raise_hand: "Melden",
    lower_hand: "Meldung zurücknehmen",
    lobby_heading: "Im Warteraum",
    knock_notice: "{name} wartet im Warteraum",
    admit: "Hereinlassen",
    refuse: "Abweisen",
    host_mute: "Stumm",
    host_camera_off: "Kamera aus",
    remove: "Entfernen",
    remove_confirm: "{name} aus dem Meeting entfernen? Aus diesem Browser ist kein erneuter Beitritt möglich.",
    mute_all: "Alle stummschalten",
    lift_all: "Stummschaltung aufheben",
    lock: "Meeting sperren",
    unlock: "Meeting entsperren",
    end_all: "Für alle beenden",
    end_confirm: "Das Meeting für alle beenden?",
    host_actions: "Moderation",
    host_you: "Sie moderieren dieses Meeting.",
    allow_unmute: "Freigeben",
    invite: "Einladungslink kopieren",
    invite_copied: "Einladungslink kopiert.",
    share: "Bildschirm teilen",
    stop_share: "Teilen beenden",
    screen_of: "Bildschirm von {name}",
    share_notice: "{name} teilt den Bildschirm",
    share_busy: "Jemand anderes teilt gerade den Bildschirm.",
    people_toggle: "Teilnehmende",
    chat_unread: "{n} ungelesen",
    devices: "Geräte",
    speaker: "Lautsprecher",
    close: "Schließen",
    device_failed: "Dieses Gerät ließ sich nicht verwenden.",
    fullscreen: "Vollbild",
    exit_fullscreen: "Vollbild beenden",
    join_muted: "Mit ausgeschaltetem Mikrofon beitreten",
    join_camera_off: "Mit ausgeschalteter Kamera beitreten",
    mic_level: "Mikrofonpegel",
    quality_good: "Verbindung gut",
    quality_fair: "Verbindung mäßig",
    quality_poor: "Verbindung schlecht",
    quality_detail: "{loss} % verloren, {fps} Bilder/s, {rtt} ms",
    weak_connection: "Ihre Verbindung ist schwach: Andere sehen und hören Sie vielleicht schlecht.",
    media_interrupted: "Die Medienverbindung ist unterbrochen. Neuer Versuch …",
    pin: "{name} groß zeigen",
    unpin: "{name} nicht mehr groß zeigen",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_follows_accept_language() {
        assert_eq!(Lang::negotiate(None), Lang::En);
        assert_eq!(Lang::negotiate(Some("de-DE,de;q=0.9,en;q=0.8")), Lang::De);
        assert_eq!(Lang::negotiate(Some("en-GB,de;q=0.9")), Lang::En);
        assert_eq!(Lang::negotiate(Some("fr-FR,de;q=0.5,en;q=0.7")), Lang::En);
        assert_eq!(Lang::negotiate(Some("fr;q=1, de;q=0.1")), Lang::De);
        assert_eq!(Lang::negotiate(Some("de;q=0, en;q=0.1")), Lang::En);
        assert_eq!(Lang::negotiate(Some("fr")), Lang::En);
        assert_eq!(Lang::negotiate(Some(";;,,q=")), Lang::En, "garbage");
    }

    #[test]
    fn both_languages_have_every_text() {
        let en = serde_json::to_value(&EN).unwrap();
        let de = serde_json::to_value(&DE).unwrap();
        for (k, v) in en.as_object().unwrap() {
            assert!(!v.as_str().unwrap().is_empty(), "en {k}");
            assert!(!de[k].as_str().unwrap().is_empty(), "de {k}");
        }
    }
}
