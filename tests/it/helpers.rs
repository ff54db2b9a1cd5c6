//! What only these tests need besides the testkit: the id of the customer of the
//! documented service-costs example, and a look into the exporter's cache file.

use std::path::Path;

use partnercenter_exporter::snapshot::cache::{load_cache, CacheError};

/// The customer of the documented service-costs example (docs/partner-center.md),
/// one of the simulator's customers.
pub const DOCUMENTED_ID: &str = "ae1d5b32-f9ff-4252-b2bf-40e21937a51a";

/// The number of customers in the service-costs part of a cache file, `None` when
/// there is no file.
pub fn cached_customers(path: &Path) -> Result<Option<usize>, CacheError> {
    let loaded = load_cache(path, &partnercenter_exporter::collectors::part_loaders())?;
    Ok(loaded.map(|l| l.snapshot.any_part("servicecosts").map_or(0, |p| p.len())))
}
