//! `x-request-id`: Envoy's UUID request-id extension, as a sidecar runs it for its
//! application's requests. An id the caller sent is kept; a request without one gets a random
//! version-4 UUID, the same on every attempt and mirror copy.

use std::cell::RefCell;

use bytes::BytesMut;
use http::HeaderValue;

/// How many ids one buffer holds: the allocation of a buffer (and of the count its ids share)
/// is spread over this many requests.
const IDS_PER_BUFFER: usize = 64;

/// The length of an id's text.
const ID_LEN: usize = 36;

thread_local! {
    /// The buffer this thread cuts ids from. An id shares the buffer's allocation, which is
    /// freed when the last id cut from it is dropped (at most 2.3 KiB kept alive by one id).
    static BUFFER: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// A version-4 UUID (RFC 9562) in its 36-character text form, from 128 random bits (the
/// request's [`Rolls::request_id`](mesh_resilience::rng::Rolls::request_id)). The value's
/// bytes are cut from a per-thread buffer of [`IDS_PER_BUFFER`] ids, so a request allocates
/// nothing for its id (a new buffer every 64 ids); every copy of the header shares them.
pub(crate) fn uuid_v4(words: [u64; 2]) -> HeaderValue {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&words[0].to_be_bytes());
    raw[8..].copy_from_slice(&words[1].to_be_bytes());
    raw[6] = (raw[6] & 0x0f) | 0x40; // version 4
    raw[8] = (raw[8] & 0x3f) | 0x80; // RFC 4122 variant
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 36];
    let mut at = 0;
    for (i, b) in raw.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text[at] = b'-';
            at += 1;
        }
        text[at] = HEX[usize::from(b >> 4)];
        text[at + 1] = HEX[usize::from(b & 0x0f)];
        at += 2;
    }
    let bytes = BUFFER.with_borrow_mut(|buf| {
        if buf.capacity() < ID_LEN {
            *buf = BytesMut::with_capacity(ID_LEN * IDS_PER_BUFFER);
        }
        buf.extend_from_slice(&text);
        buf.split().freeze()
    });
    HeaderValue::from_maybe_shared(bytes)
        .unwrap_or_else(|_| HeaderValue::from_static("00000000-0000-4000-8000-000000000000"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::uuid_v4;

    #[test]
    fn formats_a_version_4_uuid() {
        let v = uuid_v4([0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210]);
        assert_eq!(v, "01234567-89ab-4def-bedc-ba9876543210");
    }

    proptest! {
        #[test]
        fn always_36_lowercase_hex_with_version_and_variant(a: u64, b: u64) {
            let v = uuid_v4([a, b]);
            let s = v.to_str().unwrap();
            prop_assert_eq!(s.len(), 36);
            for (i, c) in s.char_indices() {
                if matches!(i, 8 | 13 | 18 | 23) {
                    prop_assert_eq!(c, '-');
                } else {
                    prop_assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
                }
            }
            prop_assert_eq!(&s[14..15], "4");
            prop_assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"));
        }

        /// Ids cut from the same buffer, one after another, stay each its own.
        #[test]
        fn ids_from_one_buffer_do_not_overlap(words in proptest::collection::vec(any::<[u64; 2]>(), 1..200)) {
            let ids: Vec<_> = words.iter().map(|w| uuid_v4(*w)).collect();
            for (w, id) in words.iter().zip(&ids) {
                prop_assert_eq!(id, &uuid_v4(*w));
            }
        }
    }
}
