//! Customer discovery's bookkeeping: what the pages of `GET /v1/customers` read
//! so far listed (docs/partner-center.md §3). It keeps each customer once, keyed by
//! its tenant GUID in lower case, skips and counts items without one, and ends a
//! list whose next links loop or that goes on beyond any real size. The client
//! fetches the pages; this module does no I/O.

use std::collections::HashSet;

use super::client::{ApiError, DiscoveredCustomer, LOOPING, TOO_MANY_LISTED, TOO_MANY_PAGES};
use super::model::{normalize_customer_id, Customer, CustomersPage, Lenient, Link};

/// Customer discovery in progress: what the pages read so far listed.
pub(super) struct Discovery {
    /// `MAX_LISTED` and `MAX_PAGES` of the client, but for tests.
    max_listed: usize,
    max_pages: usize,
    /// Each customer once, in the order first listed.
    customers: Vec<DiscoveredCustomer>,
    /// The ids of `customers` as numbers (a GUID is 128 bits): a million customers
    /// take 16 MiB here rather than the 80 MiB of their strings.
    seen: HashSet<u128>,
    pages: usize,
    /// Items read, on all pages, whether used or not.
    listed: usize,
    /// Items without an id that is a non-empty string.
    without_id: usize,
    /// Items whose id is not a GUID, and the first such id.
    not_guid: usize,
    first_not_guid: Option<String>,
    /// Items of a customer already listed (on this page or an earlier one).
    duplicates: usize,
}

impl Discovery {
    pub(super) fn new(max_listed: usize, max_pages: usize) -> Discovery {
        Discovery {
            max_listed,
            max_pages,
            customers: Vec::new(),
            seen: HashSet::new(),
            pages: 0,
            listed: 0,
            without_id: 0,
            not_guid: 0,
            first_not_guid: None,
            duplicates: 0,
        }
    }

    /// Takes in one page; the next page's link, `None` at the end of the list, or
    /// why the list is not a real one.
    ///
    /// A customer listed again is not one more customer (a list that shifts while
    /// it is read shows one twice); a page that adds no customer and still links to
    /// a next page is a loop, whatever its continuation token says.
    pub(super) fn add_page(&mut self, page: CustomersPage) -> Result<Option<Link>, ApiError> {
        self.pages = self.pages.saturating_add(1);
        self.listed = self.listed.saturating_add(page.items.len());
        let number = self.pages;
        let stop = |reason| ApiError::Paging {
            what: "customer list",
            page: number,
            reason,
        };
        if self.listed > self.max_listed {
            return Err(stop(TOO_MANY_LISTED));
        }
        let known = self.customers.len();
        for item in page.items {
            self.add_item(item);
        }
        let Some(next) = page.links.and_then(|l| l.next) else {
            return Ok(None);
        };
        if self.customers.len() == known {
            return Err(stop(LOOPING));
        }
        if self.pages >= self.max_pages {
            return Err(stop(TOO_MANY_PAGES));
        }
        Ok(Some(next))
    }

    fn add_item(&mut self, item: Lenient<Customer>) {
        let Some(item) = item.0 else {
            self.without_id += 1;
            return;
        };
        let Some(raw) = item.id.0.filter(|id| !id.trim().is_empty()) else {
            self.without_id += 1;
            return;
        };
        let Some((id, number)) = normalize_customer_id(&raw).and_then(|id| {
            let number = u128::from_str_radix(&id.replace('-', ""), 16).ok()?;
            Some((id, number))
        }) else {
            self.not_guid += 1;
            self.first_not_guid
                .get_or_insert_with(|| raw.chars().take(64).collect());
            return;
        };
        if !self.seen.insert(number) {
            self.duplicates += 1;
            return;
        }
        let profile = item.company_profile.0.unwrap_or_default();
        self.customers.push(DiscoveredCustomer {
            id,
            name: profile.company_name.0.unwrap_or_default(),
            domain: profile.domain.0.unwrap_or_default(),
        });
    }

    /// The customers found, after one warning for the items skipped, if any.
    pub(super) fn finish(self) -> Vec<DiscoveredCustomer> {
        if self.without_id > 0 || self.not_guid > 0 {
            tracing::warn!(
                without_id = self.without_id,
                not_guid = self.not_guid,
                example = self.first_not_guid.as_deref().unwrap_or(""),
                "customer list items skipped: no id, or an id that is not a customer GUID"
            );
        }
        tracing::debug!(
            customers = self.customers.len(),
            pages = self.pages,
            duplicates = self.duplicates,
            "customer discovery finished"
        );
        self.customers
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::partner_center::model::parse_json;

    const MAX_LISTED: usize = 1_000_000;
    const MAX_PAGES: usize = 10_000;

    /// A page of these items (JSON), with a next link if `more`.
    fn page(items: &[&str], more: bool) -> CustomersPage {
        let next = if more {
            r#","links":{"next":{"uri":"/v1/customers?size=500&seekOperation=Next","headers":[{"key":"MS-ContinuationToken","value":"t"}]}}"#
        } else {
            ""
        };
        parse_json(format!(r#"{{"items":[{}]{next}}}"#, items.join(",")).as_bytes()).unwrap()
    }

    fn item(id: &str, name: &str) -> String {
        format!(
            r#"{{"id":"{id}","companyProfile":{{"companyName":"{name}","domain":"{name}.example"}}}}"#
        )
    }

    const A: &str = "ae1d5b32-f9ff-4252-b2bf-40e21937a51a";
    const B: &str = "b44bb1fb-8d9a-4ba7-9a1a-1f2a8a4e7b01";
    const C: &str = "c0ffee00-0000-4000-8000-000000000001";

    #[test]
    fn customers_listed_twice_count_once_in_any_case() {
        let mut discovery = Discovery::new(MAX_LISTED, MAX_PAGES);
        let first = [item(A, "first"), item(B, "b")];
        let first: Vec<&str> = first.iter().map(String::as_str).collect();
        assert!(discovery.add_page(page(&first, true)).unwrap().is_some());
        // The list shifted while it was read: A again, in upper case, then C.
        let second = [item(&A.to_ascii_uppercase(), "second"), item(C, "c")];
        let second: Vec<&str> = second.iter().map(String::as_str).collect();
        assert!(discovery.add_page(page(&second, false)).unwrap().is_none());
        let customers = discovery.finish();
        let found: Vec<(&str, &str)> = customers
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str()))
            .collect();
        assert_eq!(found, [(A, "first"), (B, "b"), (C, "c")]);
        assert_eq!(customers[0].domain, "first.example");
    }

    #[test]
    fn ids_are_lower_case_and_items_without_a_guid_are_skipped() {
        let mut discovery = Discovery::new(MAX_LISTED, MAX_PAGES);
        let upper = item(&B.to_ascii_uppercase(), "upper");
        let named = item("contoso.onmicrosoft.com", "domain");
        let items = [
            r#"{"companyProfile":{"companyName":"no id"}}"#,
            r#"{"id":null}"#,
            r#"{"id":42}"#,
            r#""not an object""#,
            upper.as_str(),
            named.as_str(),
            r#"{"id":""}"#,
        ];
        assert!(discovery.add_page(page(&items, false)).unwrap().is_none());
        assert_eq!((discovery.without_id, discovery.not_guid), (5, 1));
        assert_eq!(
            discovery.first_not_guid.as_deref(),
            Some("contoso.onmicrosoft.com")
        );
        let customers = discovery.finish();
        assert_eq!(customers.len(), 1);
        assert_eq!(customers[0].id, B);
        assert_eq!(customers[0].name, "upper");
    }

    #[test]
    fn a_next_link_that_loops_stops_at_the_second_page() {
        let mut discovery = Discovery::new(MAX_LISTED, MAX_PAGES);
        let items = [item(A, "a"), item(B, "b")];
        let items: Vec<&str> = items.iter().map(String::as_str).collect();
        assert!(discovery.add_page(page(&items, true)).unwrap().is_some());
        let err = discovery.add_page(page(&items, true)).unwrap_err();
        assert_eq!(err.kind(), "paging");
        assert!(
            matches!(err, ApiError::Paging { page: 2, reason, .. } if reason == LOOPING),
            "{err}"
        );
        // An empty page that links on is the same loop.
        let mut discovery = Discovery::new(MAX_LISTED, MAX_PAGES);
        assert!(matches!(
            discovery.add_page(page(&[], true)),
            Err(ApiError::Paging { page: 1, .. })
        ));
        // An empty last page, or a last page of known customers, is just the end.
        let mut discovery = Discovery::new(MAX_LISTED, MAX_PAGES);
        assert!(discovery.add_page(page(&items, true)).unwrap().is_some());
        assert!(discovery.add_page(page(&items, false)).unwrap().is_none());
        assert!(discovery.add_page(page(&[], false)).unwrap().is_none());
        assert_eq!(discovery.finish().len(), 2);
    }

    #[test]
    fn items_and_pages_are_bounded() {
        let items: Vec<String> = (0..5)
            .map(|i| item(&format!("{i:08}-0000-4000-8000-000000000000"), "x"))
            .collect();
        let items: Vec<&str> = items.iter().map(String::as_str).collect();
        // Each page adds new customers, but the list goes on past the item bound...
        let mut discovery = Discovery::new(12, 100);
        let mut outcome = Ok(None);
        for i in 0..3 {
            let fresh: Vec<String> = items
                .iter()
                .map(|s| s.replace("-0000-4000", &format!("-{i:04}-4000")))
                .collect();
            let fresh: Vec<&str> = fresh.iter().map(String::as_str).collect();
            outcome = discovery.add_page(page(&fresh, true));
        }
        assert!(
            matches!(outcome, Err(ApiError::Paging { page: 3, reason, .. }) if reason == TOO_MANY_LISTED)
        );
        // ... or past the page bound.
        let mut discovery = Discovery::new(MAX_LISTED, 2);
        let one = item(A, "a");
        let other = item(B, "b");
        assert!(discovery
            .add_page(page(&[one.as_str()], true))
            .unwrap()
            .is_some());
        assert!(matches!(
            discovery.add_page(page(&[other.as_str()], true)),
            Err(ApiError::Paging { page: 2, reason, .. }) if reason == TOO_MANY_PAGES
        ));
    }
}
