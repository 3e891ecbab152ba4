//! JSON bodies (PAR and token requests may be JSON): `Params::from_json`. Properties: every key
//! is readable (string, or refused with `invalid_request`); the string parameters survive a
//! form re-encoding (how a pushed request is stored).
#![no_main]

use autional::params::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = match Params::from_json(data) {
        Ok(p) => p,
        Err(e) => {
            assert_eq!(e.code.as_str(), "invalid_request");
            return;
        }
    };
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(data) {
        for k in m.keys() {
            assert!(p.contains(k));
            if let Err(e) = p.get(k) {
                assert_eq!(e.code.as_str(), "invalid_request");
            }
            let _ = p.json(k);
        }
    }
    let mut pairs: Vec<(String, String)> = p.strings().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    pairs.sort();
    let again = Params::from_form(p.encode().as_bytes()).expect("re-encoded parameters parse");
    let mut pairs2: Vec<(String, String)> = again.strings().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    pairs2.sort();
    assert_eq!(pairs, pairs2);
});
