//! Lesson controls on the media core: what hosts may do (mute, lock, remove, end, the
//! lobby), what everyone may do (hands), and that the room, not the client, enforces
//! it.

use super::*;
use raum::media::room::Arrival;
use raum::signaling::{Knock, WaitReason};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};

/// Packets of `from`'s `kind` that client `me` has received so far.
fn received(w: &World, me: usize, from: usize, kind: RtpCodecKind) -> usize {
    w.clients[me]
        .stream(w.clients[from].id, kind)
        .map_or(0, |s| s.seqs.len())
}

fn said(w: &World, me: usize, f: impl Fn(&ServerMessage) -> bool) -> bool {
    w.clients[me].messages.iter().any(f)
}

fn forbidden(m: &ServerMessage) -> bool {
    matches!(
        m,
        ServerMessage::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    )
}

/// A host mutes a pupil whose peer (the rtc crate's, which knows nothing of mutes)
/// keeps sending: the room stops forwarding that audio at once and tells everyone;
/// the pupil's own unmute is refused while the meeting does not allow it; the host
/// lifts the mute and the pupil's unmute brings the audio back. Its video is not
/// touched.
#[test]
fn a_host_mute_stops_the_audio_at_the_sfu_whatever_the_peer_sends() {
    let mut w = World::new(RoomSettings {
        participants_may_unmute: false,
        ..settings(10)
    });
    let teacher = w.join_host("Teacher", true, false);
    let pupil = w.join("Pupil", true, true);
    let other = w.join("Other", true, false);
    w.run(Duration::from_secs(3));
    assert!(received(&w, other, pupil, RtpCodecKind::Audio) > 50);
    let pupil_id = w.clients[pupil].id;
    let mute = |audio| ClientMessage::MuteParticipant {
        id: pupil_id.to_string(),
        audio: Some(audio),
        video: Some(false),
    };
    w.say(teacher, mute(true));
    w.run(Duration::from_millis(200));
    let at_mute = received(&w, other, pupil, RtpCodecKind::Audio);
    let video_at_mute = received(&w, other, pupil, RtpCodecKind::Video);
    w.run(Duration::from_secs(2));
    assert_eq!(
        received(&w, other, pupil, RtpCodecKind::Audio),
        at_mute,
        "no audio of the muted pupil is forwarded"
    );
    assert!(received(&w, other, pupil, RtpCodecKind::Video) > video_at_mute + 20);
    assert!(w.room.stats().rtp_muted > 50, "{:?}", w.room.stats());
    assert!(said(&w, pupil, |m| *m
        == ServerMessage::MutedByHost {
            audio: true,
            video: false
        }));
    assert!(said(
        &w,
        other,
        |m| matches!(m, ServerMessage::Mute { id, audio: true, .. } if *id == pupil_id.to_string())
    ));
    // The pupil unmutes itself: refused, still nothing forwarded.
    w.say(
        pupil,
        ClientMessage::Mute {
            audio: false,
            video: false,
        },
    );
    w.run(Duration::from_secs(1));
    assert!(said(&w, pupil, forbidden));
    assert_eq!(received(&w, other, pupil, RtpCodecKind::Audio), at_mute);
    // The host lifts it; the pupil unmutes; the audio comes again.
    w.say(teacher, mute(false));
    w.run(Duration::from_millis(100));
    assert!(said(&w, pupil, |m| *m
        == ServerMessage::MutedByHost {
            audio: false,
            video: false
        }));
    w.say(
        pupil,
        ClientMessage::Mute {
            audio: false,
            video: false,
        },
    );
    w.run(Duration::from_secs(1));
    assert!(received(&w, other, pupil, RtpCodecKind::Audio) > at_mute + 20);
}

/// Where the meeting lets participants unmute, a pupil muted by the host (here by
/// "mute everyone", which spares hosts) unmutes itself and is heard again.
#[test]
fn where_participants_may_unmute_a_muted_pupil_unmutes_itself() {
    let mut w = World::new(settings(10));
    let teacher = w.join_host("Teacher", true, false);
    let pupil = w.join("Pupil", true, false);
    w.run(Duration::from_secs(2));
    w.say(
        teacher,
        ClientMessage::MuteEveryone {
            audio: Some(true),
            video: Some(false),
        },
    );
    w.run(Duration::from_secs(1));
    assert!(
        !said(&w, teacher, |m| matches!(
            m,
            ServerMessage::MutedByHost { .. }
        )),
        "hosts are spared"
    );
    let at_mute = received(&w, teacher, pupil, RtpCodecKind::Audio);
    w.run(Duration::from_secs(1));
    assert_eq!(received(&w, teacher, pupil, RtpCodecKind::Audio), at_mute);
    w.say(
        pupil,
        ClientMessage::Mute {
            audio: false,
            video: false,
        },
    );
    w.run(Duration::from_secs(1));
    assert!(!said(&w, pupil, forbidden));
    assert!(received(&w, teacher, pupil, RtpCodecKind::Audio) > at_mute + 20);
    // "Mute everyone" holds for who joins later (rejoining does not lift it).
    let late = w.join("Late", true, false);
    w.run(Duration::from_secs(1));
    assert!(said(&w, late, |m| *m
        == ServerMessage::MutedByHost {
            audio: true,
            video: false
        }));
    assert_eq!(received(&w, teacher, late, RtpCodecKind::Audio), 0);
    w.say(
        teacher,
        ClientMessage::MuteEveryone {
            audio: Some(false),
            video: Some(false),
        },
    );
    let after = w.join("After", true, false);
    w.run(Duration::from_secs(1));
    assert!(!said(&w, after, |m| matches!(
        m,
        ServerMessage::MutedByHost { .. }
    )));
    assert!(received(&w, teacher, after, RtpCodecKind::Audio) > 20);
}

/// Every host message from a participant is refused with `forbidden` and changes
/// nothing: nobody muted, removed or locked out, the meeting goes on.
#[test]
fn host_messages_from_a_participant_are_forbidden_and_change_nothing() {
    let mut w = World::new(settings(10));
    let _teacher = w.join_host("Teacher", true, false);
    let pupil = w.join("Pupil", true, false);
    let other = w.join("Other", true, false);
    w.run(Duration::from_secs(2));
    let other_id = w.clients[other].id.to_string();
    for msg in [
        ClientMessage::MuteParticipant {
            id: other_id.clone(),
            audio: Some(true),
            video: Some(true),
        },
        ClientMessage::MuteEveryone {
            audio: Some(true),
            video: Some(true),
        },
        ClientMessage::Remove {
            id: other_id.clone(),
        },
        ClientMessage::Lock { locked: true },
        ClientMessage::EndMeeting,
        ClientMessage::LowerHand {
            id: other_id.clone(),
        },
        ClientMessage::Admit { id: "99".into() },
        ClientMessage::Refuse { id: "99".into() },
    ] {
        let before = w.clients[pupil].messages.len();
        w.say(pupil, msg.clone());
        w.run(Duration::from_millis(100));
        assert!(
            w.clients[pupil].messages[before..].iter().any(forbidden),
            "{msg:?} not refused"
        );
    }
    let heard = received(&w, pupil, other, RtpCodecKind::Audio);
    w.run(Duration::from_secs(1));
    assert!(
        received(&w, pupil, other, RtpCodecKind::Audio) > heard + 20,
        "not muted"
    );
    assert!(!w.clients[other].closed, "not removed");
    assert_eq!(w.room.participants(), 3);
    assert!(!said(&w, other, |m| matches!(
        m,
        ServerMessage::MutedByHost { .. } | ServerMessage::Locked { .. }
    )));
    let newcomer = w.room.join(w.now, "New".to_owned());
    assert!(newcomer.is_ok(), "not locked, not ended: {newcomer:?}");
}

/// Lock lets only hosts in; remove disconnects one participant and tells the others;
/// a host message naming someone who is not here is answered and does nothing; end
/// ends it for all and lets nobody in again.
#[test]
fn a_host_locks_removes_and_ends() {
    let mut w = World::new(settings(10));
    let teacher = w.join_host("Teacher", true, false);
    let pupil = w.join("Pupil", true, false);
    let other = w.join("Other", true, false);
    w.run(Duration::from_secs(1));
    let host = |w: &mut World, msg| {
        w.say(teacher, msg);
        w.run(Duration::from_millis(100));
    };
    host(&mut w, ClientMessage::Lock { locked: true });
    assert!(said(&w, other, |m| *m == ServerMessage::Locked { locked: true }));
    assert_eq!(
        w.room.join(w.now, "Late".to_owned()),
        Err(ErrorCode::Locked)
    );
    assert!(
        w.room
            .join_as(w.now, "Co-teacher".to_owned(), Vec::new(), Role::Host)
            .is_ok(),
        "hosts still get in"
    );
    host(&mut w, ClientMessage::Lock { locked: false });
    assert!(w.room.join(w.now, "Late".to_owned()).is_ok());

    let pupil_id = w.clients[pupil].id;
    host(
        &mut w,
        ClientMessage::Remove {
            id: pupil_id.to_string(),
        },
    );
    assert!(said(&w, pupil, |m| matches!(
        m,
        ServerMessage::Error {
            code: ErrorCode::Removed,
            ..
        }
    )));
    assert!(w.clients[pupil].closed);
    assert!(said(&w, other, |m| *m
        == ServerMessage::PeerLeft {
            id: pupil_id.to_string()
        }));
    // The one who left, and someone who never was: answered, nothing happens.
    let before = w.room.participants();
    for gone in [
        pupil_id.to_string(),
        "999".to_owned(),
        "not-a-number".to_owned(),
    ] {
        host(&mut w, ClientMessage::Remove { id: gone.clone() });
        host(
            &mut w,
            ClientMessage::MuteParticipant {
                id: gone,
                audio: Some(true),
                video: Some(true),
            },
        );
    }
    assert_eq!(w.room.participants(), before);
    assert!(said(
        &w,
        teacher,
        |m| matches!(m, ServerMessage::Error { code: ErrorCode::BadRequest, message } if message.contains("no such participant"))
    ));

    host(&mut w, ClientMessage::EndMeeting);
    assert!(said(&w, other, |m| matches!(
        m,
        ServerMessage::Error {
            code: ErrorCode::MeetingEnded,
            ..
        }
    )));
    assert!(w.clients[other].closed && w.clients[teacher].closed);
    assert_eq!(w.room.participants(), 0);
    assert_eq!(
        w.room.join(w.now, "After".to_owned()),
        Err(ErrorCode::MeetingEnded)
    );
}

/// A raised hand is seen by everyone, also by who joins later (with who the hosts
/// are); the hand's owner or a host lowers it; a participant cannot lower another's.
#[test]
fn hands_are_raised_for_all_to_see_and_a_host_lowers_them() {
    let mut w = World::new(settings(10));
    let teacher = w.join_host("Teacher", true, false);
    let pupil = w.join("Pupil", true, false);
    let other = w.join("Other", true, false);
    w.run(Duration::from_millis(500));
    let pupil_id = w.clients[pupil].id;
    w.say(pupil, ClientMessage::Hand { raised: true });
    w.run(Duration::from_millis(100));
    let up = ServerMessage::Hand {
        id: pupil_id.to_string(),
        raised: true,
    };
    for c in [teacher, pupil, other] {
        assert!(
            said(&w, c, |m| *m == up),
            "{} saw the hand",
            w.clients[c].name
        );
    }
    // Raised again: nothing new to tell.
    let before = w.clients[other].messages.len();
    w.say(pupil, ClientMessage::Hand { raised: true });
    w.run(Duration::from_millis(100));
    assert!(!w.clients[other].messages[before..].contains(&up));
    // Who joins now sees it in `welcome`, and who the host is.
    let late = w.join("Late", true, false);
    w.run(Duration::from_millis(100));
    let welcome = w.clients[late]
        .messages
        .iter()
        .find_map(|m| match m {
            ServerMessage::Welcome { peers, .. } => Some(peers.clone()),
            _ => None,
        })
        .unwrap();
    let seen = |name: &str| welcome.iter().find(|p| p.name == name).unwrap();
    assert!(seen("Pupil").hand && !seen("Pupil").host);
    assert!(seen("Teacher").host && !seen("Teacher").hand);
    // Another participant may not lower it; the host may.
    w.say(
        other,
        ClientMessage::LowerHand {
            id: pupil_id.to_string(),
        },
    );
    w.run(Duration::from_millis(100));
    assert!(said(&w, other, forbidden));
    let down = ServerMessage::Hand {
        id: pupil_id.to_string(),
        raised: false,
    };
    assert!(!said(&w, pupil, |m| *m == down));
    w.say(
        teacher,
        ClientMessage::LowerHand {
            id: pupil_id.to_string(),
        },
    );
    w.run(Duration::from_millis(100));
    for c in [teacher, pupil, other, late] {
        assert!(
            said(&w, c, |m| *m == down),
            "{} saw it lowered",
            w.clients[c].name
        );
    }
}

impl World {
    /// Someone asks to come in (with the seat `seat`, as a browser tab that was here
    /// before); they may be let in at once or wait. Returns their client's index.
    fn knock(&mut self, name: &str, seat: Option<&str>) -> Result<usize, ErrorCode> {
        let n = self.clients.len();
        let mut c = Client::new(name, n as u8 + 1, self.now);
        c.id = self.room.arrive(
            self.now,
            Arrival {
                name: name.to_owned(),
                role: Role::Participant,
                seat: seat.map(str::to_owned),
                ice_servers: Vec::new(),
            },
        )?;
        self.clients.push(c);
        self.pump();
        Ok(n)
    }

    /// Client `i`, let in, offers its media (as the web client does on `welcome`).
    fn offer_media(&mut self, i: usize, audio: bool, video: bool) {
        let now = self.now;
        let sdp = self.clients[i].offer(now, audio, video);
        let id = self.clients[i].id;
        self.room
            .handle_message(now, id, ClientMessage::Offer { sdp, screen: None });
        self.pump();
    }
}

fn welcomed(w: &World, i: usize) -> bool {
    said(w, i, |m| matches!(m, ServerMessage::Welcome { .. }))
}

fn seat_of(w: &World, i: usize) -> String {
    w.clients[i]
        .messages
        .iter()
        .find_map(|m| match m {
            ServerMessage::Welcome { seat, .. } => Some(seat.clone()),
            _ => None,
        })
        .expect("welcomed")
}

fn refused(code: ErrorCode) -> impl Fn(&ServerMessage) -> bool {
    move |m| matches!(m, ServerMessage::Error { code: c, .. } if *c == code)
}

/// With a lobby, participants wait: hosts see them knock and let one in and turn the
/// other away; who waits can do nothing but leave; a host who comes later sees who
/// waits; a participant cannot admit anyone.
#[test]
fn a_lobby_holds_participants_until_a_host_admits_or_refuses_them() {
    let mut w = World::new(RoomSettings {
        lobby: true,
        ..settings(10)
    });
    let teacher = w.join_host("Teacher", true, false);
    let ada = w.knock("Ada", None).unwrap();
    let bob = w.knock("Bob", None).unwrap();
    for i in [ada, bob] {
        assert!(said(&w, i, |m| *m
            == ServerMessage::Waiting {
                reason: WaitReason::Lobby
            }));
        assert!(!welcomed(&w, i));
        let knock = ServerMessage::LobbyJoined {
            peer: Knock {
                id: w.clients[i].id.to_string(),
                name: w.clients[i].name.clone(),
            },
        };
        assert!(said(&w, teacher, |m| *m == knock));
    }
    assert_eq!((w.room.participants(), w.room.waiting()), (1, 2));
    assert_eq!(w.room.stats().waiting, 2);
    // Waiting, nothing else works: no media, no chat, no hand.
    w.say(
        ada,
        ClientMessage::Offer {
            sdp: "v=0\r\n".into(),
            screen: None,
        },
    );
    w.say(ada, ClientMessage::Hand { raised: true });
    w.say(ada, ClientMessage::Chat { text: "hi".into() });
    w.pump();
    let nothing_but_leave = |m: &ServerMessage| matches!(m, ServerMessage::Error { code: ErrorCode::BadRequest, message } if message.contains("waiting"));
    assert_eq!(
        w.clients[ada]
            .messages
            .iter()
            .filter(|m| nothing_but_leave(m))
            .count(),
        3
    );
    assert!(!said(&w, teacher, |m| matches!(
        m,
        ServerMessage::Hand { .. } | ServerMessage::Chat { .. }
    )));

    // A second participant in the room may not admit anyone.
    let ada_id = w.clients[ada].id.to_string();
    w.say(teacher, ClientMessage::Admit { id: ada_id.clone() });
    w.pump();
    assert!(welcomed(&w, ada));
    w.offer_media(ada, true, false);
    let bob_id = w.clients[bob].id.to_string();
    w.say(ada, ClientMessage::Admit { id: bob_id.clone() });
    w.say(ada, ClientMessage::Refuse { id: bob_id.clone() });
    w.pump();
    assert_eq!(
        w.clients[ada]
            .messages
            .iter()
            .filter(|m| forbidden(m))
            .count(),
        2
    );
    assert_eq!(w.room.waiting(), 1, "Bob still waits");
    assert!(!welcomed(&w, bob));
    w.run(Duration::from_secs(2));
    assert!(
        received(&w, teacher, ada, RtpCodecKind::Audio) > 20,
        "Ada is in, with media"
    );
    assert!(said(&w, teacher, |m| *m
        == ServerMessage::LobbyLeft { id: ada_id.clone() }));

    w.say(teacher, ClientMessage::Refuse { id: bob_id.clone() });
    w.pump();
    assert!(said(&w, bob, refused(ErrorCode::Refused)));
    assert!(w.clients[bob].closed && !welcomed(&w, bob));
    assert!(said(&w, teacher, |m| *m
        == ServerMessage::LobbyLeft { id: bob_id.clone() }));
    assert!(
        !said(&w, ada, |m| matches!(
            m,
            ServerMessage::LobbyJoined { .. } | ServerMessage::LobbyLeft { .. }
        )),
        "only hosts see the lobby"
    );
    assert_eq!((w.room.participants(), w.room.waiting()), (2, 0));

    // Admitting or refusing someone no longer waiting (or never): answered, nothing
    // happens.
    let before = w.clients[teacher].messages.len();
    for id in [bob_id.clone(), ada_id.clone(), "77".into(), "x".into()] {
        w.say(teacher, ClientMessage::Admit { id: id.clone() });
        w.say(teacher, ClientMessage::Refuse { id });
    }
    w.pump();
    assert_eq!(
        w.clients[teacher].messages[before..]
            .iter()
            .filter(|m| matches!(m, ServerMessage::Error { code: ErrorCode::BadRequest, message } if message.contains("no such participant")))
            .count(),
        8
    );
    assert_eq!((w.room.participants(), w.room.waiting()), (2, 0));

    // A host who comes later sees who waits; who waits and leaves is gone for hosts.
    let cleo = w.knock("Cleo", None).unwrap();
    let co = w.join_host("Co-teacher", true, false);
    let lobby = w.clients[co]
        .messages
        .iter()
        .find_map(|m| match m {
            ServerMessage::Welcome { lobby, .. } => Some(lobby.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        lobby,
        [Knock {
            id: w.clients[cleo].id.to_string(),
            name: "Cleo".into()
        }]
    );
    w.say(cleo, ClientMessage::Leave);
    w.pump();
    assert!(w.clients[cleo].closed);
    let gone = ServerMessage::LobbyLeft {
        id: w.clients[cleo].id.to_string(),
    };
    assert!(said(&w, teacher, |m| *m == gone) && said(&w, co, |m| *m == gone));
    assert_eq!(w.room.waiting(), 0);

    // Ada's connection drops; her tab joins again with its seat: she was let in
    // before, so she need not wait again. A seat never let in waits.
    let seat = seat_of(&w, ada);
    w.say(ada, ClientMessage::Leave);
    w.pump();
    let knocks = |w: &World| {
        w.clients[teacher]
            .messages
            .iter()
            .filter(|m| matches!(m, ServerMessage::LobbyJoined { .. }))
            .count()
    };
    let before = knocks(&w);
    let again = w.knock("Ada", Some(&seat)).unwrap();
    assert!(welcomed(&w, again));
    assert_eq!(knocks(&w), before);
    let stranger = w.knock("Eve", Some("madeUpSeat123")).unwrap();
    assert!(!welcomed(&w, stranger));
    assert_eq!(knocks(&w), before + 1);
}

/// A lobby holds at most as many as the meeting: a flood of 600 sockets fills it with
/// 500 and the rest are told it is full; the room goes on, a host sees them all, and
/// ending the meeting tells each of them.
#[test]
fn a_lobby_of_500_waiting_is_bounded_and_the_meeting_goes_on() {
    let mut w = World::new(RoomSettings {
        lobby: true,
        ..settings(500)
    });
    let teacher = w.join_host("Teacher", true, false);
    let pupil = w.join_host("Co", true, false);
    let mut full = 0;
    for i in 0..600 {
        let r = w.room.arrive(
            w.now,
            Arrival {
                name: format!("N{i}"),
                role: Role::Participant,
                seat: None,
                ice_servers: Vec::new(),
            },
        );
        if r == Err(ErrorCode::RoomFull) {
            full += 1;
        }
    }
    w.pump();
    assert_eq!((full, w.room.waiting()), (100, 500));
    assert_eq!(
        w.clients[teacher]
            .messages
            .iter()
            .filter(|m| matches!(m, ServerMessage::LobbyJoined { .. }))
            .count(),
        500
    );
    // A flood of host messages for nobody: each answered, nothing changes.
    for i in 0..2000 {
        w.say(
            teacher,
            ClientMessage::Admit {
                id: format!("{}", 10_000 + i),
            },
        );
        w.say(
            teacher,
            ClientMessage::Remove {
                id: format!("{}", 10_000 + i),
            },
        );
    }
    w.pump();
    assert_eq!(w.room.waiting(), 500);
    w.run(Duration::from_secs(2));
    assert!(received(&w, teacher, pupil, RtpCodecKind::Audio) > 20);
    w.say(teacher, ClientMessage::EndMeeting);
    let mut ended = 0;
    while let Some((_, out)) = w.room.poll_outbound() {
        if matches!(
            out,
            Outbound::Message(ServerMessage::Error {
                code: ErrorCode::MeetingEnded,
                ..
            })
        ) {
            ended += 1;
        }
    }
    assert_eq!(ended, 502, "everyone, waiting or not, is told");
    assert_eq!(w.room.waiting(), 0);
}

/// `withoutHost: wait`: participants who come before the teacher wait; the teacher's
/// arrival lets them in; when the teacher leaves, those in stay and newcomers wait
/// again.
#[test]
fn without_a_host_participants_wait_for_one() {
    let mut w = World::new(RoomSettings {
        without_host: raum::media::room::WithoutHost::Wait,
        ..settings(10)
    });
    let ada = w.knock("Ada", None).unwrap();
    assert!(said(&w, ada, |m| *m
        == ServerMessage::Waiting {
            reason: WaitReason::NoHost
        }));
    assert!(!welcomed(&w, ada));
    let teacher = w.join_host("Teacher", true, false);
    assert!(welcomed(&w, ada), "the host's arrival lets Ada in");
    w.offer_media(ada, true, false);
    let bob = w.knock("Bob", None).unwrap();
    assert!(welcomed(&w, bob), "with a host here nobody waits");
    w.offer_media(bob, true, false);
    w.run(Duration::from_secs(2));
    assert!(received(&w, bob, ada, RtpCodecKind::Audio) > 20);
    assert!(
        !said(&w, teacher, |m| matches!(
            m,
            ServerMessage::LobbyJoined { .. }
        )),
        "no lobby: the host is not asked"
    );
    w.say(teacher, ClientMessage::Leave);
    w.pump();
    let cleo = w.knock("Cleo", None).unwrap();
    assert!(!welcomed(&w, cleo));
    assert_eq!((w.room.participants(), w.room.waiting()), (2, 1));
    w.run(Duration::from_secs(1));
    assert!(
        received(&w, bob, ada, RtpCodecKind::Audio) > 60,
        "those in go on"
    );
}

/// Who a host removed stays out when the same browser tab joins again (it brings its
/// seat); a host still gets in when the meeting is full.
#[test]
fn a_removed_seat_stays_out_and_hosts_get_in_when_full() {
    let mut w = World::new(settings(3));
    let teacher = w.join_host("Teacher", true, false);
    let pupil = w.knock("Pupil", None).unwrap();
    let other = w.knock("Other", None).unwrap();
    let seat = seat_of(&w, pupil);
    assert_ne!(seat, seat_of(&w, other));
    assert_eq!(w.knock("Fourth", None), Err(ErrorCode::RoomFull));
    assert!(w.join_host("Co-teacher", true, false) > 0, "a host gets in");
    w.say(
        teacher,
        ClientMessage::Remove {
            id: w.clients[pupil].id.to_string(),
        },
    );
    w.pump();
    assert!(w.clients[pupil].closed);
    assert_eq!(w.knock("Pupil", Some(&seat)), Err(ErrorCode::Removed));
    // Another tab of someone else's who reloads keeps its seat and comes in.
    let other_seat = seat_of(&w, other);
    w.say(other, ClientMessage::Leave);
    w.pump();
    let back = w.knock("Other", Some(&other_seat)).unwrap();
    assert_eq!(seat_of(&w, back), other_seat);
}

/// A host's mute names the kinds it changes: muting the camera after the microphone
/// keeps the microphone muted; lifting one lifts only that one.
#[test]
fn a_host_mute_changes_only_the_kinds_it_names() {
    let mut w = World::new(settings(10));
    let teacher = w.join_host("Teacher", true, false);
    let pupil = w.join("Pupil", true, true);
    let id = w.clients[pupil].id.to_string();
    let mut host = |audio, video| {
        w.say(
            teacher,
            ClientMessage::MuteParticipant {
                id: id.clone(),
                audio,
                video,
            },
        );
        w.pump();
        w.clients[pupil]
            .messages
            .iter()
            .rev()
            .find_map(|m| match m {
                ServerMessage::MutedByHost { audio, video } => Some((*audio, *video)),
                _ => None,
            })
    };
    assert_eq!(host(Some(true), None), Some((true, false)));
    assert_eq!(host(None, Some(true)), Some((true, true)));
    assert_eq!(host(Some(false), None), Some((false, true)));
}

impl World {
    /// Client `i` starts sharing a screen: a second video track, named in its offer
    /// as the screen share. `stop`: it stops (the track goes, the offer names none).
    fn share(&mut self, i: usize, stop: bool) {
        let now = self.now;
        let c = &mut self.clients[i];
        if stop {
            let (sender, _) = c.screen.take().expect("sharing");
            c.pc.remove_track(sender).unwrap();
        } else {
            let ssrc = 0x2000_0000 + c.id * 16;
            let track = MediaStreamTrack::new(
                format!("client-{}", c.id),
                format!("screen-{}", c.id),
                format!("screen-{}", c.id),
                RtpCodecKind::Video,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: codec(RtpCodecKind::Video),
                    ..Default::default()
                }],
            );
            // A transceiver of its own, as the web client's addTransceiver makes (an
            // addTrack could take over a section another track arrives on).
            let init = rtc::rtp_transceiver::RTCRtpTransceiverInit {
                direction: rtc::rtp_transceiver::RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![],
            };
            let tr = c.pc.add_transceiver_from_track(track, Some(init)).unwrap();
            let sender = c.pc.rtp_transceiver(tr).unwrap().sender().unwrap();
            c.screen = Some((sender, ssrc));
            c.screen_transceiver = Some(tr);
        }
        let offer = c.pc.create_offer(None).unwrap();
        c.pc.set_local_description(now, offer).unwrap();
        let sdp = c.pc.local_description().unwrap().sdp;
        let mid = c
            .screen_transceiver
            .and_then(|tr| c.pc.rtp_transceiver(tr).unwrap().mid().clone());
        let id = c.id;
        let screen = if stop { None } else { mid };
        self.room
            .handle_message(now, id, ClientMessage::Offer { sdp, screen });
        self.pump();
    }
}

fn screen_of(w: &World, me: usize, from: usize) -> usize {
    w.clients[me]
        .received
        .get(&(
            format!("{}-screen", w.clients[from].id),
            RtpCodecKind::Video,
        ))
        .map_or(0, |s| s.seqs.len())
}

/// A host's screen share reaches everyone as a stream of its own, also those whose
/// layout shows no tile for it; a participant's share is refused where only hosts
/// may share, and what that peer (ignoring the refusal) sends on it is forwarded to
/// nobody, not as a camera either; a second host cannot share while one does; the
/// share stops when its track goes, and then another may share.
#[test]
fn one_screen_share_at_a_time_by_whom_the_meeting_allows() {
    let mut w = World::new(RoomSettings {
        screen_share: raum::media::room::ScreenShare::Hosts,
        ..settings(10)
    });
    let teacher = w.join_host("Teacher", true, false);
    let pupil = w.join("Pupil", true, false);
    let co = w.join_host("Co", true, false);
    w.run(Duration::from_secs(1));
    // A layout naming nobody: cameras would be paused, a screen is not.
    w.layout(pupil, &[]);
    w.share(teacher, false);
    let teacher_id = w.clients[teacher].id.to_string();
    let started = ServerMessage::Screen {
        id: teacher_id.clone(),
        sharing: true,
    };
    for c in [teacher, pupil, co] {
        assert!(said(&w, c, |m| *m == started), "{}", w.clients[c].name);
    }
    w.run(Duration::from_secs(2));
    assert!(
        screen_of(&w, pupil, teacher) > 100,
        "{}",
        screen_of(&w, pupil, teacher)
    );
    assert!(screen_of(&w, co, teacher) > 100);
    let late = w.join("Late", true, false);
    let welcome_says = w.clients[late].messages.iter().any(|m| matches!(m, ServerMessage::Welcome { peers, .. } if peers.iter().any(|p| p.name == "Teacher" && p.screen)));
    assert!(welcome_says, "who comes later learns who shares");

    // A participant may not; what it sends anyway reaches nobody.
    w.share(pupil, false);
    assert!(said(
        &w,
        pupil,
        |m| matches!(m, ServerMessage::Error { code: ErrorCode::ScreenRefused, message } if message.contains("only hosts"))
    ));
    let answer = w.clients[pupil]
        .messages
        .iter()
        .rev()
        .find_map(|m| match m {
            ServerMessage::Answer { sdp } => Some(sdp.clone()),
            _ => None,
        })
        .unwrap();
    let mid = w.clients[pupil]
        .screen_transceiver
        .and_then(|tr| {
            w.clients[pupil]
                .pc
                .rtp_transceiver(tr)
                .unwrap()
                .mid()
                .clone()
        })
        .unwrap();
    let section = answer
        .split("m=")
        .find(|s| s.contains(&format!("a=mid:{mid}\r\n")))
        .unwrap();
    assert!(
        section.contains("a=inactive"),
        "the refused share is received as nothing, not as a camera:\n{section}"
    );
    // A second host may not while the first shares.
    w.share(co, false);
    assert!(said(
        &w,
        co,
        |m| matches!(m, ServerMessage::Error { code: ErrorCode::ScreenRefused, message } if message.contains("one at a time"))
    ));
    w.run(Duration::from_secs(2));
    for (from, name) in [(pupil, "Pupil"), (co, "Co")] {
        assert_eq!(screen_of(&w, teacher, from), 0, "{name}'s share");
        assert_eq!(
            received(&w, teacher, from, RtpCodecKind::Video),
            0,
            "{name}'s share as a camera"
        );
    }

    // The teacher stops: the stream ends for everyone; now the co-teacher may share.
    w.share(teacher, true);
    let stopped = ServerMessage::Screen {
        id: teacher_id,
        sharing: false,
    };
    assert!(said(&w, pupil, |m| *m == stopped));
    w.run(Duration::from_millis(500));
    let before = screen_of(&w, pupil, teacher);
    w.run(Duration::from_secs(1));
    assert_eq!(screen_of(&w, pupil, teacher), before, "nothing more of it");
    w.share(co, true);
    w.share(co, false);
    w.run(Duration::from_secs(2));
    assert!(
        screen_of(&w, pupil, co) > 100,
        "{}",
        screen_of(&w, pupil, co)
    );

    // A host switches the sharer's video off: the share ends for all, and the sharer
    // may not start another until that is lifted.
    w.say(
        teacher,
        ClientMessage::MuteParticipant {
            id: w.clients[co].id.to_string(),
            audio: None,
            video: Some(true),
        },
    );
    w.pump();
    let co_id = w.clients[co].id.to_string();
    let ended = ServerMessage::Screen {
        id: co_id.clone(),
        sharing: false,
    };
    assert!(said(&w, pupil, |m| *m == ended));
    w.run(Duration::from_millis(500));
    let before = screen_of(&w, pupil, co);
    w.run(Duration::from_secs(1));
    assert_eq!(screen_of(&w, pupil, co), before);
    w.share(co, true);
    w.share(co, false);
    assert!(said(
        &w,
        co,
        |m| matches!(m, ServerMessage::Error { code: ErrorCode::ScreenRefused, message } if message.contains("video off"))
    ));

    // Who leaves while sharing ends the share.
    w.say(
        teacher,
        ClientMessage::MuteParticipant {
            id: co_id.clone(),
            audio: None,
            video: Some(false),
        },
    );
    w.share(co, true);
    w.share(co, false);
    w.run(Duration::from_millis(500));
    assert!(screen_of(&w, pupil, co) > before, "shared again");
    w.say(co, ClientMessage::Leave);
    w.pump();
    assert_eq!(
        w.clients[pupil]
            .messages
            .iter()
            .filter(|m| **m == ended)
            .count(),
        2
    );
}

/// A browser that shares its screen again keeps the stream's SSRC and its sequence
/// numbers: the room keeps the stream's SRTP state, so a share after the first one
/// has wrapped its sequence numbers still decrypts.
#[test]
fn a_screen_shared_again_after_its_sequence_numbers_wrapped_still_arrives() {
    let mut w = World::new(settings(10));
    let teacher = w.join_host("Teacher", true, false);
    let pupil = w.join("Pupil", true, false);
    w.run(Duration::from_secs(1));
    // The screen's packets start just below the wrap.
    w.clients[teacher].sent.insert(RtpCodecKind::Video, 65_300);
    w.share(teacher, false);
    w.run(Duration::from_secs(4));
    let first = screen_of(&w, pupil, teacher);
    assert!(first > 300, "{first}");
    w.share(teacher, true);
    w.run(Duration::from_millis(500));
    w.share(teacher, false);
    w.run(Duration::from_secs(2));
    let refused = w.room.stats().datagrams_refused;
    assert!(
        screen_of(&w, pupil, teacher) > first + 100,
        "{} after {first}; {refused} refused",
        screen_of(&w, pupil, teacher)
    );
}
