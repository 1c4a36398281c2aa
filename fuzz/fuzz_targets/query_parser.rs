#![no_main]

// See src/fuzz.rs: arbitrary bytes must never panic, and what is accepted must round-trip.
libfuzzer_sys::fuzz_target!(|data: &[u8]| opslog::fuzz::query_parser(data));
