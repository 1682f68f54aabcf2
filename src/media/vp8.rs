//! The VP8 RTP payload descriptor (RFC 7741) read and rewritten in place: what the SFU
//! needs to switch a subscriber between simulcast layers without its decoder noticing.
//! A switch may only happen at a keyframe, and the subscriber must see one continuous
//! picture ID and TL0PICIDX sequence, whichever layer they came from.

/// What the SFU reads of a VP8 packet's payload descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// Where the picture ID is in the payload, and whether it has 15 bits (else 7).
    pub picture_id: Option<(usize, bool)>,
    /// Where TL0PICIDX is in the payload.
    pub tl0_pic_idx: Option<usize>,
    /// The packet starts a frame (S bit set in partition 0).
    pub frame_start: bool,
    /// The frame this packet starts is a keyframe.
    pub keyframe: bool,
    /// A keyframe's width and height in pixels (in the VP8 frame header).
    pub size: Option<(u16, u16)>,
}

impl Descriptor {
    /// The descriptor at the start of `payload`, or `None` if it is cut short.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let first = *payload.first()?;
        let mut at = 1;
        let mut d = Descriptor::default();
        if first & 0x80 != 0 {
            let x = *payload.get(at)?;
            at += 1;
            if x & 0x80 != 0 {
                let b = *payload.get(at)?;
                let long = b & 0x80 != 0;
                d.picture_id = Some((at, long));
                at += if long { 2 } else { 1 };
            }
            if x & 0x40 != 0 {
                d.tl0_pic_idx = Some(at);
                at += 1;
            }
            if x & 0x30 != 0 {
                at += 1; // TID, Y, KEYIDX
            }
        }
        if at > payload.len() {
            return None;
        }
        d.frame_start = first & 0x10 != 0 && first & 0x07 == 0;
        if d.frame_start {
            // The VP8 frame header: bit 0 of the first byte is 0 for a keyframe, whose
            // header then has a start code and the size (RFC 6386, 9.1).
            let frame = &payload[at..];
            d.keyframe = frame.first().is_some_and(|b| b & 0x01 == 0);
            if d.keyframe && frame.len() >= 10 && frame[3..6] == [0x9d, 0x01, 0x2a] {
                let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
                let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
                d.size = Some((w, h));
            }
        }
        Some(d)
    }

    /// The picture ID in `payload` (as wide as it is written there).
    pub fn read_picture_id(&self, payload: &[u8]) -> Option<u16> {
        let (at, long) = self.picture_id?;
        Some(if long {
            u16::from_be_bytes([payload[at], payload[at + 1]]) & 0x7fff
        } else {
            u16::from(payload[at] & 0x7f)
        })
    }

    /// Writes `id` (modulo the field's width) as the picture ID in `payload`.
    pub fn write_picture_id(&self, payload: &mut [u8], id: u16) {
        let Some((at, long)) = self.picture_id else {
            return;
        };
        if long {
            let v = 0x8000 | (id & 0x7fff);
            payload[at..at + 2].copy_from_slice(&v.to_be_bytes());
        } else {
            payload[at] = (id & 0x7f) as u8;
        }
    }

    /// The TL0PICIDX in `payload`.
    pub fn read_tl0_pic_idx(&self, payload: &[u8]) -> Option<u8> {
        Some(payload[self.tl0_pic_idx?])
    }

    /// Writes `idx` as the TL0PICIDX in `payload`.
    pub fn write_tl0_pic_idx(&self, payload: &mut [u8], idx: u8) {
        if let Some(at) = self.tl0_pic_idx {
            payload[at] = idx;
        }
    }
}

/// The modulus of a picture ID field.
pub fn picture_id_modulus(long: bool) -> u16 {
    if long { 0x8000 } else { 0x80 }
}

/// A payload that starts a VP8 keyframe of `width` × `height` with a 15-bit picture
/// ID and a TL0PICIDX, then `rest` (for tests and the load generator, which send
/// recognisable payloads).
pub fn keyframe_payload(picture_id: u16, tl0: u8, width: u16, height: u16, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0x90, 0xc0];
    p.extend_from_slice(&(0x8000 | (picture_id & 0x7fff)).to_be_bytes());
    p.push(tl0);
    // Frame tag (keyframe, version 0, shown), start code, size.
    p.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]);
    p.extend_from_slice(&width.to_le_bytes());
    p.extend_from_slice(&height.to_le_bytes());
    p.extend_from_slice(rest);
    p
}

/// A payload that continues a frame (`start`: starts an interframe) with the same
/// descriptor fields as [`keyframe_payload`].
pub fn interframe_payload(picture_id: u16, tl0: u8, start: bool, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![if start { 0x90 } else { 0x80 }, 0xc0];
    p.extend_from_slice(&(0x8000 | (picture_id & 0x7fff)).to_be_bytes());
    p.push(tl0);
    if start {
        p.push(0x01); // frame tag: an interframe
    }
    p.extend_from_slice(rest);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyframe_start_gives_its_size_and_fields() {
        let p = keyframe_payload(0x1234, 7, 1280, 720, b"rest");
        let d = Descriptor::parse(&p).unwrap();
        assert!(d.frame_start && d.keyframe);
        assert_eq!(d.size, Some((1280, 720)));
        assert_eq!(d.read_picture_id(&p), Some(0x1234));
        assert_eq!(d.read_tl0_pic_idx(&p), Some(7));
    }

    #[test]
    fn interframes_and_continuations_are_no_keyframes() {
        let p = interframe_payload(5, 1, true, b"x");
        let d = Descriptor::parse(&p).unwrap();
        assert!(d.frame_start && !d.keyframe && d.size.is_none());
        let p = interframe_payload(5, 1, false, &[0x00, 0x00]);
        let d = Descriptor::parse(&p).unwrap();
        assert!(!d.frame_start && !d.keyframe);
    }

    #[test]
    fn picture_ids_are_rewritten_in_place_in_either_width() {
        let mut p = keyframe_payload(0x7fff, 255, 320, 180, b"");
        let d = Descriptor::parse(&p).unwrap();
        d.write_picture_id(&mut p, 0x8001);
        d.write_tl0_pic_idx(&mut p, 3);
        let d2 = Descriptor::parse(&p).unwrap();
        assert_eq!(d2.read_picture_id(&p), Some(1));
        assert_eq!(d2.read_tl0_pic_idx(&p), Some(3));
        assert_eq!(d2.size, Some((320, 180)), "the frame header is untouched");
        // A 7-bit picture ID (M bit clear), no TL0PICIDX.
        let mut short = vec![0x90, 0x80, 0x05, 0x00];
        let d = Descriptor::parse(&short).unwrap();
        assert_eq!(d.picture_id, Some((2, false)));
        assert!(d.keyframe);
        d.write_picture_id(&mut short, 0x81);
        assert_eq!(short[2], 0x01);
    }

    #[test]
    fn cut_descriptors_are_refused_and_nothing_panics() {
        for cut in [
            &[][..],
            &[0x80],
            &[0x80, 0x80],
            &[0x80, 0x80, 0x80],
            &[0x80, 0x40],
        ] {
            assert_eq!(Descriptor::parse(cut), None, "{cut:?}");
        }
        for n in 0..=255u8 {
            for m in [0u8, 0x80, 0xff, 0x40, 0x20] {
                let _ = Descriptor::parse(&[n, m, 0xff, 0xff, 0x9d, 0x01, 0x2a]);
            }
        }
    }
}
