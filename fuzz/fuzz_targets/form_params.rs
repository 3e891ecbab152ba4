//! Form bodies and query strings (token, refresh, PAR, revocation, introspection, authorize,
//! logout): `Params::from_form`. Properties: every key is readable; re-encoding the string
//! parameters and parsing again gives the same parameters.
#![no_main]

use autional::params::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Params::from_form(data) else { return };
    let mut pairs: Vec<(String, String)> = p.strings().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    pairs.sort();
    for (k, v) in &pairs {
        match p.get(k) {
            Ok(Some(s)) => assert_eq!(s, v),
            Ok(None) => assert!(v.is_empty()),
            Err(e) => panic!("string parameter refused: {e:?}"),
        }
        let _ = p.json(k);
    }
    let again = Params::from_form(p.encode().as_bytes()).expect("re-encoded parameters parse");
    let mut pairs2: Vec<(String, String)> = again.strings().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    pairs2.sort();
    assert_eq!(pairs, pairs2);
});
