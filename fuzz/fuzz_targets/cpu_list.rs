//! Fuzzes the CPU-list parser `tailgate tune` reads every sysfs CPU file and `--irq-cpus` with
//! (`tuning::CpuSet::parse`).
//!
//! Whatever the text: no crash, and a set it accepts reads back the same from both forms it is
//! written in, the kernel's compact list (`0-3,8`) and the profile's flow list (`[0, 1, 2]`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tailgate::tuning::CpuSet;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(set) = CpuSet::parse(&text) else {
        return;
    };
    if !set.is_empty() {
        assert_eq!(CpuSet::parse(&set.to_string()).as_ref(), Ok(&set));
    }
    let flow = set.to_flow_list();
    let inner = flow.trim_start_matches('[').trim_end_matches(']');
    assert_eq!(CpuSet::parse(inner).as_ref(), Ok(&set));
    assert_eq!(set.iter().count(), set.len());
});
