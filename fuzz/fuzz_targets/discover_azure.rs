//! Discovery of Azure `az resource list` output from arbitrary bytes: never panics, and
//! what is accepted keeps the bounds and order `mandate_fuzz::discover::check` states
//! (input convention there).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_govern::discover::Source;

fuzz_target!(|data: &[u8]| {
    mandate_fuzz::discover::check(Source::Azure, data);
});
