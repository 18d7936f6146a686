//! Fuzzes the OTLP/JSON path for arbitrary bytes taken as a JSON export request of each signal.
//!
//! Whatever `json::to_protobuf` accepts must come out as protobuf that the wire layer's
//! validator accepts (the JSON path feeds the same zero-copy path as protobuf bodies), and that
//! `json::from_protobuf` can turn back into JSON.
//!
//! With `FUZZ_JSON_ROUNDTRIP=1` in the environment it also checks the round trip: the JSON that
//! `from_protobuf` writes must convert to the same protobuf again. That is stricter than what
//! the wire layer promises, so it is opt-in.

#![no_main]

use std::hint::black_box;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tailgate_wire::json::{from_protobuf, to_protobuf};
use tailgate_wire::{item_count, Request, Signal};

fn roundtrip() -> bool {
    static ROUNDTRIP: OnceLock<bool> = OnceLock::new();
    *ROUNDTRIP.get_or_init(|| std::env::var_os("FUZZ_JSON_ROUNDTRIP").is_some_and(|v| v == "1"))
}

fuzz_target!(|data: &[u8]| {
    for signal in [Signal::Traces, Signal::Metrics, Signal::Logs] {
        check(signal, data);
    }
});

fn check(signal: Signal, data: &[u8]) {
    let protobuf = match to_protobuf(signal, data) {
        Ok(protobuf) => protobuf,
        Err(err) => {
            black_box(err.to_string());
            return;
        }
    };
    let request = match Request::parse(signal, &protobuf) {
        Ok(request) => request,
        Err(err) => panic!(
            "{signal:?}: protobuf from to_protobuf does not validate: {err}\nprotobuf: {protobuf:02x?}"
        ),
    };
    black_box(item_count(&request));
    let json = match from_protobuf(signal, &protobuf) {
        Ok(json) => json,
        Err(err) => panic!(
            "{signal:?}: from_protobuf fails on to_protobuf's output: {err}\nprotobuf: {protobuf:02x?}"
        ),
    };
    if roundtrip() {
        match to_protobuf(signal, &json) {
            Ok(again) => assert!(
                again == protobuf,
                "{signal:?}: JSON round trip changes the request\njson: {}\nfirst:  {protobuf:02x?}\nsecond: {again:02x?}",
                String::from_utf8_lossy(&json)
            ),
            Err(err) => panic!(
                "{signal:?}: from_protobuf's JSON does not convert back: {err}\njson: {}",
                String::from_utf8_lossy(&json)
            ),
        }
    }
}
