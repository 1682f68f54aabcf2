//! The gateway's HTML pages, as pure functions of the language and what the page
//! shows. Every page links to `/privacy`; the join page carries the web client.

use std::fmt::Write;
use std::path::Path;

use jiff::Timestamp;

use super::assets::ASSETS;
use super::directory::Meeting;
use super::i18n::{Lang, Strings};

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that is safe inside `<script type="application/json">`: `<` never appears raw,
/// so no `</script>` can end the element early.
fn script_json(value: &serde_json::Value) -> String {
    value.to_string().replace('<', "\\u003c")
}

fn layout(lang: Lang, page: &str, title: &str, body: &str) -> String {
    let s = lang.strings();
    format!(
        "<!doctype html>\n<html lang=\"{tag}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title} · raum</title><link rel=\"stylesheet\" href=\"{css}\"></head>\
         <body data-page=\"{page}\"><main id=\"main\">{body}</main>\
         <footer><a href=\"/privacy\" target=\"_blank\" rel=\"noopener\">{privacy}</a></footer>\
         <script src=\"{js}\" defer></script></body></html>\n",
        tag = lang.tag(),
        title = escape(title),
        css = ASSETS.css.path,
        js = ASSETS.js.path,
        privacy = s.privacy,
    )
}

fn message_page(lang: Lang, page: &str, heading: &str, text: &str) -> String {
    layout(
        lang,
        page,
        heading,
        &format!(
            "<section class=\"notice\"><h1>{}</h1><p>{}</p></section>",
            escape(heading),
            escape(text)
        ),
    )
}

/// The one page for every unknown, malformed or withdrawn link.
pub fn not_found(lang: Lang) -> String {
    let s = lang.strings();
    message_page(lang, "not-found", s.not_found_title, s.not_found_text)
}

/// Too many failed lookups from this client.
pub fn too_many(lang: Lang) -> String {
    let s = lang.strings();
    message_page(lang, "too-many", s.too_many_title, s.too_many_text)
}

/// The gateway has just started and does not know the meetings yet.
pub fn starting(lang: Lang) -> String {
    let s = lang.strings();
    message_page(lang, "starting", s.starting_title, s.starting_text)
}

/// The meeting is over.
pub fn ended(lang: Lang) -> String {
    let s = lang.strings();
    message_page(lang, "ended", s.ended_title, s.ended_text)
}

/// The meeting has as many participants as it allows.
pub fn full(lang: Lang, max: u32) -> String {
    let s = lang.strings();
    message_page(
        lang,
        "full",
        s.full_title,
        &s.full_text.replace("{n}", &max.to_string()),
    )
}

/// Before the start: shows the start time (UTC here; the script shows it in the
/// participant's time zone, with the zone, and counts down) and turns into the join
/// page when the meeting opens.
pub fn waiting(lang: Lang, meeting: &Meeting, starts_at: Option<Timestamp>) -> String {
    let s = lang.strings();
    let when = match starts_at {
        Some(t) => s.waiting_starts.replace(
            "{time}",
            &format!(
                "<time datetime=\"{}\">{}</time>",
                t,
                t.strftime("%Y-%m-%d %H:%M UTC")
            ),
        ),
        None => escape(s.waiting_soon),
    };
    layout(
        lang,
        "waiting",
        s.waiting_title,
        &format!(
            "<section class=\"notice\"><p class=\"meeting-title\">{}</p><h1>{}</h1>\
             <p id=\"starts\">{when}</p><p id=\"countdown\" data-template=\"{}\"></p><p>{}</p></section>",
            escape(&meeting.title),
            escape(s.waiting_title),
            escape(s.waiting_countdown),
            escape(s.waiting_auto),
        ),
    )
}

/// The join page: the lobby (name, devices, preview) and the call, driven by the
/// script with the texts of `lang` embedded. `invite`: the participants' token, for
/// the "copy invite link" button (also on the host link's page, which must never
/// hand out its own).
pub fn join(lang: Lang, meeting: &Meeting, invite: &str) -> String {
    let s: &Strings = lang.strings();
    let config = serde_json::json!({
        "lang": lang.tag(),
        "strings": s,
        "meeting": {
            "title": meeting.title,
            "audio": meeting.audio,
            "video": meeting.video,
            "chat": meeting.chat,
            "maxParticipants": meeting.max_participants,
            "screenShare": meeting.screen_share.as_str(),
            "invitePath": format!("/j/{invite}"),
        },
    });
    let mut body = String::with_capacity(4096);
    let _ = write!(
        body,
        "<script type=\"application/json\" id=\"config\">{config}</script>\
         <section id=\"lobby\"><h1>{title}</h1>\
         <div class=\"preview\"><video id=\"preview\" autoplay muted playsinline></video></div>\
         <form id=\"join-form\" novalidate>\
         <label for=\"name\">{name_label}</label>\
         <input id=\"name\" name=\"name\" maxlength=\"64\" required autocomplete=\"nickname\">",
        config = script_json(&config),
        title = escape(&meeting.title),
        name_label = s.name_label,
    );
    if meeting.video {
        let _ = write!(
            body,
            "<label for=\"camera\">{}</label><select id=\"camera\"></select>",
            s.camera
        );
    }
    if meeting.audio {
        // The level shows the microphone works before anyone hears it.
        let _ = write!(
            body,
            "<label for=\"microphone\">{}</label><select id=\"microphone\"></select>\
             <meter id=\"mic-level\" min=\"0\" max=\"1\" low=\"0.02\" value=\"0\" aria-label=\"{}\"></meter>",
            s.microphone, s.mic_level
        );
    }
    if meeting.audio {
        let _ = write!(
            body,
            "<label class=\"check\"><input type=\"checkbox\" id=\"join-muted\"> {}</label>",
            s.join_muted
        );
    }
    if meeting.video {
        let _ = write!(
            body,
            "<label class=\"check\"><input type=\"checkbox\" id=\"join-camera-off\"> {}</label>",
            s.join_camera_off
        );
    }
    let _ = write!(
        body,
        "<p id=\"lobby-msg\" class=\"msg\" role=\"alert\"></p>\
         <button type=\"submit\" id=\"join\">{join}</button></form></section>\
         <section id=\"call\" hidden>\
         <header id=\"call-head\"><h1 id=\"call-title\">{title}</h1>\
         <button id=\"invite\" type=\"button\" class=\"quiet\">{invite}</button>\
         <button id=\"devices-open\" type=\"button\" class=\"quiet\" aria-haspopup=\"dialog\">{devices}</button>\
         <button id=\"fullscreen\" type=\"button\" class=\"quiet\" aria-pressed=\"false\" hidden>{fullscreen}</button></header>\
         <p id=\"banner\" role=\"alert\" hidden></p>\
         <div id=\"stage\"><div id=\"grid\"></div>\
         <p id=\"status\" role=\"status\" aria-live=\"polite\"></p>\
         <span id=\"pager\" hidden><button id=\"page-prev\" type=\"button\" aria-label=\"{prev}\">‹</button>\
         <span id=\"page\" aria-live=\"polite\"></span>\
         <button id=\"page-next\" type=\"button\" aria-label=\"{next}\">›</button></span></div>\
         <div id=\"controls\">{mic}{cam}\
         <button id=\"hand\" type=\"button\" aria-pressed=\"false\">{raise_hand}</button>\
         <button id=\"share\" type=\"button\" aria-pressed=\"false\" hidden>{share}</button>\
         <button id=\"view\" type=\"button\" aria-pressed=\"false\">{view}</button>\
         <button id=\"people-toggle\" type=\"button\" aria-expanded=\"false\" aria-controls=\"people-panel\">{people_toggle}</button>\
         {chat_toggle}\
         <button id=\"leave\" type=\"button\" class=\"danger\">{leave}</button></div>\
         <aside id=\"side\">\
         <section id=\"people-panel\" hidden>\
         <div id=\"host-controls\" hidden><h2>{host_actions}</h2><p class=\"hint\">{host_you}</p>\
         <div class=\"row\"><button id=\"mute-all\" type=\"button\">{mute_all}</button>\
         <button id=\"lift-all\" type=\"button\">{lift_all}</button>\
         <button id=\"lock\" type=\"button\" aria-pressed=\"false\">{lock}</button>\
         <button id=\"end-all\" type=\"button\" class=\"danger\">{end_all}</button></div>\
         <div id=\"knocks\" hidden><h2>{lobby_heading}</h2><ul id=\"knock-list\"></ul></div></div>\
         <h2 id=\"people-head\">{people}</h2><ul id=\"people\"></ul></section>{chat}</aside>\
         </section>\
         <dialog id=\"devices\" aria-labelledby=\"devices-title\"><form method=\"dialog\">\
         <h2 id=\"devices-title\">{devices}</h2>{device_choices}\
         <label for=\"call-speaker\" class=\"speaker-choice\">{speaker}</label>\
         <select id=\"call-speaker\" class=\"speaker-choice\"></select>\
         <p id=\"devices-msg\" class=\"msg\" role=\"alert\"></p>\
         <button id=\"devices-close\" type=\"submit\">{close}</button></form></dialog>\
         <section id=\"knock\" class=\"notice\" hidden><h1 id=\"knock-title\"></h1>\
         <p id=\"knock-text\"></p><button id=\"knock-leave\" type=\"button\">{leave}</button></section>\
         <section id=\"end\" class=\"notice\" hidden><h1 id=\"end-title\"></h1><p id=\"end-text\"></p>\
         <button id=\"rejoin\" type=\"button\">{rejoin}</button></section>",
        join = s.join,
        title = escape(&meeting.title),
        invite = s.invite,
        mic = if meeting.audio {
            format!(
                "<button id=\"mic\" type=\"button\" aria-pressed=\"false\">{}</button>",
                s.mute
            )
        } else {
            String::new()
        },
        cam = if meeting.video {
            format!(
                "<button id=\"cam\" type=\"button\" aria-pressed=\"false\">{}</button>",
                s.camera_off
            )
        } else {
            String::new()
        },
        leave = s.leave,
        raise_hand = s.raise_hand,
        share = s.share,
        host_actions = s.host_actions,
        host_you = s.host_you,
        mute_all = s.mute_all,
        lift_all = s.lift_all,
        lock = s.lock,
        end_all = s.end_all,
        lobby_heading = s.lobby_heading,
        view = s.view_speaker,
        prev = s.page_prev,
        next = s.page_next,
        people = s.people,
        people_toggle = s.people_toggle,
        devices = s.devices,
        fullscreen = s.fullscreen,
        speaker = s.speaker,
        close = s.close,
        device_choices = {
            let mut choices = String::new();
            if meeting.video {
                let _ = write!(
                    choices,
                    "<label for=\"call-camera\">{}</label><select id=\"call-camera\"></select>",
                    s.camera
                );
            }
            if meeting.audio {
                let _ = write!(
                    choices,
                    "<label for=\"call-microphone\">{}</label><select id=\"call-microphone\"></select>",
                    s.microphone
                );
            }
            choices
        },
        chat_toggle = if meeting.chat {
            format!(
                "<button id=\"chat-toggle\" type=\"button\" aria-expanded=\"false\" \
                 aria-controls=\"chat-panel\">{}</button>",
                s.chat
            )
        } else {
            String::new()
        },
        chat = if meeting.chat {
            format!(
                "<section id=\"chat-panel\" hidden><h2>{chat}</h2><ol id=\"messages\" aria-live=\"polite\"></ol>\
                 <form id=\"chat-form\"><input id=\"chat-input\" maxlength=\"2000\" \
                 autocomplete=\"off\" aria-label=\"{placeholder}\" placeholder=\"{placeholder}\">\
                 <button type=\"submit\">{send}</button></form></section>",
                chat = s.chat,
                placeholder = s.chat_placeholder,
                send = s.send,
            )
        } else {
            String::new()
        },
        rejoin = s.rejoin,
    );
    layout(lang, "join", &meeting.title, &body)
}

/// What the privacy notice states: the deployment's facts, and optionally its own
/// wording.
#[derive(Clone, Debug)]
pub struct PrivacyNotice {
    /// How long access-log entries are kept, in days.
    pub retention_days: u32,
    /// Replacement bodies (HTML fragments written by the deployment's operators):
    /// English, German.
    pub custom: [Option<String>; 2],
}

impl PrivacyNotice {
    /// The built-in wording, or `privacy.en.html` / `privacy.de.html` from `dir` where
    /// they exist.
    pub fn load(retention_days: u32, dir: Option<&Path>) -> std::io::Result<Self> {
        let mut custom = [None, None];
        if let Some(dir) = dir {
            for (i, lang) in ["en", "de"].iter().enumerate() {
                let path = dir.join(format!("privacy.{lang}.html"));
                match std::fs::read_to_string(&path) {
                    Ok(text) => custom[i] = Some(text),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(std::io::Error::new(
                            e.kind(),
                            format!("cannot read {}: {e}", path.display()),
                        ));
                    }
                }
            }
        }
        Ok(Self {
            retention_days,
            custom,
        })
    }
}

/// The privacy notice.
pub fn privacy(lang: Lang, notice: &PrivacyNotice) -> String {
    let s = lang.strings();
    let custom = match lang {
        Lang::En => &notice.custom[0],
        Lang::De => &notice.custom[1],
    };
    let days = notice.retention_days;
    let span = if days.is_multiple_of(7) {
        match lang {
            Lang::En => format!("{days} days ({} weeks)", days / 7),
            Lang::De => format!("{days} Tagen ({} Wochen)", days / 7),
        }
    } else {
        match lang {
            Lang::En => format!("{days} days"),
            Lang::De => format!("{days} Tagen"),
        }
    };
    let body = match (custom, lang) {
        (Some(text), _) => text.clone(),
        (None, Lang::En) => format!(
            "<h1>{title}</h1>\
             <h2>What is recorded</h2>\
             <p>Each time a meeting link is opened and each time someone joins a meeting, \
             one line is written to an access log with exactly three fields: the <b>time</b> \
             (UTC), the <b>IP address</b> the request came from, and the <b>browser's \
             identification</b> (its User-Agent). Nothing else: not the meeting, not the \
             link, not your name.</p>\
             <h2>Why</h2><p>To detect and investigate attacks on this service.</p>\
             <h2>How long</h2><p>Access-log entries are deleted after {span}. Only when \
             entries are needed as evidence of an attack may compliance staff place a hold, \
             which keeps the entries of the affected time span until the hold is lifted.</p>\
             <h2>What is never stored</h2><p>Audio, video and chat messages pass through the \
             server only while the meeting runs and are never stored. Your name is shown to \
             the other participants of the meeting and is not stored.</p>",
            title = s.privacy_title,
        ),
        (None, Lang::De) => format!(
            "<h1>{title}</h1>\
             <h2>Was aufgezeichnet wird</h2>\
             <p>Bei jedem Aufruf eines Meeting-Links und bei jedem Beitritt zu einem Meeting \
             wird eine Zeile in ein Zugriffsprotokoll geschrieben, mit genau drei Angaben: \
             dem <b>Zeitpunkt</b> (UTC), der <b>IP-Adresse</b>, von der die Anfrage kam, und \
             der <b>Kennung des Browsers</b> (User-Agent). Sonst nichts: weder das Meeting \
             noch der Link noch Ihr Name.</p>\
             <h2>Wozu</h2><p>Um Angriffe auf diesen Dienst zu erkennen und aufzuklären.</p>\
             <h2>Wie lange</h2><p>Einträge im Zugriffsprotokoll werden nach {span} gelöscht. \
             Nur wenn Einträge als Beweismittel nach einem Angriff gebraucht werden, dürfen \
             Compliance-Beauftragte sie sperren; dann bleiben die Einträge des betroffenen \
             Zeitraums erhalten, bis die Sperre aufgehoben wird.</p>\
             <h2>Was nie gespeichert wird</h2><p>Ton, Bild und Chatnachrichten laufen nur \
             während des Meetings über den Server und werden nie gespeichert. Ihr Name wird \
             den anderen Teilnehmenden angezeigt und nicht gespeichert.</p>",
            title = s.privacy_title,
        ),
    };
    layout(
        lang,
        "privacy",
        s.privacy_title,
        &format!("<article class=\"notice\">{body}</article>"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::directory::State;

    fn meeting(title: &str) -> Meeting {
        Meeting {
            title: title.into(),
            state: State::Open,
            backend: None,
            participants: None,
            max_participants: 4,
            audio: true,
            video: false,
            chat: true,
            screen_share: Default::default(),
            host_token_sha256: None,
        }
    }

    #[test]
    fn titles_are_escaped_and_cannot_end_the_config_script() {
        let page = join(
            Lang::En,
            &meeting("</script><img src=x onerror=alert(1)>"),
            "tok",
        );
        assert!(!page.contains("<img"), "{page}");
        assert_eq!(page.matches("</script>").count(), 2, "config and app.js");
        assert!(page.contains("\\u003c/script>"));
    }

    #[test]
    fn the_join_page_offers_only_what_the_meeting_allows() {
        let page = join(Lang::De, &meeting("Team"), "tok");
        assert!(page.contains("\"invitePath\":\"/j/tok\""));
        assert!(page.contains("<html lang=\"de\">"));
        assert!(page.contains("id=\"microphone\""));
        assert!(!page.contains("id=\"camera\""), "video is off");
        assert!(page.contains("Beitreten"));
        assert!(page.contains("href=\"/privacy\""));
        assert!(page.contains(&ASSETS.js.path));
    }

    #[test]
    fn the_not_found_page_names_no_meeting() {
        let page = not_found(Lang::De);
        assert!(page.contains("Nicht gefunden"));
        assert!(
            !page.contains("/j/"),
            "nothing about the link that was asked for"
        );
    }

    #[test]
    fn the_privacy_notice_states_the_fields_and_the_retention() {
        let notice = PrivacyNotice {
            retention_days: 56,
            custom: [None, None],
        };
        let en = privacy(Lang::En, &notice);
        for fact in [
            "time",
            "IP address",
            "User-Agent",
            "56 days (8 weeks)",
            "never stored",
        ] {
            assert!(en.contains(fact), "{fact}");
        }
        let de = privacy(Lang::De, &notice);
        for fact in [
            "Zeitpunkt",
            "IP-Adresse",
            "User-Agent",
            "56 Tagen (8 Wochen)",
            "nie gespeichert",
        ] {
            assert!(de.contains(fact), "{fact}");
        }
        let custom = PrivacyNotice {
            retention_days: 30,
            custom: [Some("<p>Our own words</p>".into()), None],
        };
        assert!(privacy(Lang::En, &custom).contains("Our own words"));
        assert!(privacy(Lang::De, &custom).contains("30 Tagen"));
    }

    #[test]
    fn the_waiting_page_shows_the_start() {
        let t: Timestamp = "2026-11-27T09:30:00Z".parse().unwrap();
        let page = waiting(Lang::En, &meeting("Standup"), Some(t));
        assert!(page.contains("datetime=\"2026-11-27T09:30:00Z\""));
        assert!(page.contains("2026-11-27 09:30 UTC"));
        assert!(waiting(Lang::De, &meeting("x"), None).contains("Es beginnt gleich"));
    }
}
