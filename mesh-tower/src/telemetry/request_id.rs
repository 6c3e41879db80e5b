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
    let hi = (words[0] & !0xf000) | 0x4000; // version 4
    let lo = (words[1] & !(0xc0 << 56)) | (0x80 << 56); // RFC 4122 variant
    let mut text = [b'-'; ID_LEN];
    let (a, b) = (hex8((hi >> 32) as u32), hex8(hi as u32));
    let (c, d) = (hex8((lo >> 32) as u32), hex8(lo as u32));
    text[0..8].copy_from_slice(&a);
    text[9..13].copy_from_slice(&b[..4]);
    text[14..18].copy_from_slice(&b[4..]);
    text[19..23].copy_from_slice(&c[..4]);
    text[24..28].copy_from_slice(&c[4..]);
    text[28..36].copy_from_slice(&d);
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

/// The eight lowercase hex digits of `x`, most significant first: each nibble spread to a
/// byte, then turned into its digit, eight at a time (no table, no branch per digit).
fn hex8(x: u32) -> [u8; 8] {
    let x = u64::from(x);
    let x = ((x & 0xffff_0000) << 16) | (x & 0xffff);
    let x = ((x & 0x0000_ff00_0000_ff00) << 8) | (x & 0x0000_00ff_0000_00ff);
    let x = ((x & 0x00f0_00f0_00f0_00f0) << 4) | (x & 0x000f_000f_000f_000f);
    // 1 in each byte whose nibble is 10 or more: those become `a`..`f`.
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (x + 0x3030_3030_3030_3030 + letters * (u64::from(b'a' - b'0') - 10)).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{hex8, uuid_v4};

    proptest! {
        /// The spread-nibble digits are the formatter's.
        #[test]
        fn hex8_is_lowercase_hex(x: u32) {
            let digits = hex8(x);
            prop_assert_eq!(std::str::from_utf8(&digits).unwrap(), format!("{x:08x}"));
        }
    }

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
