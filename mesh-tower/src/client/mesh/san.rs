//! The subject alternative names of a certificate (DNS names, URIs such as SPIFFE IDs, IP
//! addresses, e-mail addresses), read from its DER form with a small bounded reader: rustls
//! checks DNS names and IP addresses itself but not URIs, which is what mesh identities are.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `2.5.29.17`, subjectAltName.
const SAN_OID: &[u8] = &[0x55, 0x1D, 0x11];

/// One DER element: its tag, its contents and what follows it. `None` on anything malformed
/// (or a multi-byte tag, which certificates do not use where this reader looks).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1F == 0x1F {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The elements of a constructed value's contents.
fn elements(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, value, rest) = tlv(input)?;
        input = rest;
        Some((tag, value))
    })
}

/// The subject alternative names of a DER certificate, as text: DNS names, URIs, e-mail
/// addresses as written, IP addresses in their usual notation. Empty when the certificate has
/// none or cannot be read.
pub(crate) fn subject_alt_names(cert: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Some((0x30, cert, _)) = tlv(cert) else {
        return out;
    };
    let Some((0x30, tbs, _)) = tlv(cert) else {
        return out;
    };
    let Some((_, extensions)) = elements(tbs).find(|(tag, _)| *tag == 0xA3) else {
        return out;
    };
    let Some((0x30, extensions, _)) = tlv(extensions) else {
        return out;
    };
    for (tag, ext) in elements(extensions) {
        if tag != 0x30 {
            continue;
        }
        let mut parts = elements(ext);
        if parts.next() != Some((0x06, SAN_OID)) {
            continue;
        }
        let Some((0x04, value)) = parts.find(|(tag, _)| *tag == 0x04) else {
            continue;
        };
        let Some((0x30, names, _)) = tlv(value) else {
            continue;
        };
        for (tag, name) in elements(names) {
            match tag {
                // rfc822Name, dNSName, uniformResourceIdentifier (IA5String, implicit).
                0x81 | 0x82 | 0x86 => {
                    if let Ok(s) = std::str::from_utf8(name) {
                        out.push(s.to_owned());
                    }
                }
                // iPAddress.
                0x87 => match name.len() {
                    4 => {
                        let b: [u8; 4] = name.try_into().unwrap_or_default();
                        out.push(IpAddr::V4(Ipv4Addr::from(b)).to_string());
                    }
                    16 => {
                        let b: [u8; 16] = name.try_into().unwrap_or_default();
                        out.push(IpAddr::V6(Ipv6Addr::from(b)).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::subject_alt_names;

    #[test]
    fn reads_dns_uri_and_ip_names() {
        let mut params = rcgen::CertificateParams::new(vec!["api.example.com".to_owned()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI(
            rcgen::string::Ia5String::try_from("spiffe://cluster.local/ns/default/sa/api").unwrap(),
        ));
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("::1".parse().unwrap()));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_alt_names(cert.der()),
            [
                "api.example.com",
                "spiffe://cluster.local/ns/default/sa/api",
                "127.0.0.1",
                "::1"
            ]
        );
    }

    #[test]
    fn garbage_and_truncation_give_nothing() {
        assert!(subject_alt_names(b"").is_empty());
        assert!(subject_alt_names(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]).is_empty());
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        for cut in [1, der.len() / 2, der.len() - 1] {
            // A truncated certificate never panics; what it yields is bounded by what is there.
            let _ = subject_alt_names(&der[..cut]);
        }
    }
}
