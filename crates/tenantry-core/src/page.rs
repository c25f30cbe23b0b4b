//! Cursor pagination: `?limit=&cursor=` in, `{items, next_cursor}` out.
//!
//! Identifiers are UUIDv7, so "newest first" is "highest id first" and the cursor is simply
//! the last id returned (opaque to clients: base64url of its 16 bytes). Keyset pagination
//! stays O(limit) however deep the client pages, unlike OFFSET.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::Problem;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// Raw list parameters as they arrive in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page (1–200, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    /// Return items strictly older than this id.
    pub after: Option<Cursor>,
}

impl PageRequest {
    pub fn first(limit: u32) -> Self {
        Self { limit, after: None }
    }

    /// The number of rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch_limit(&self) -> u64 {
        u64::from(self.limit) + 1
    }
}

impl TryFrom<PageParams> for PageRequest {
    type Error = Problem;

    fn try_from(params: PageParams) -> Result<Self, Problem> {
        let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(
                Problem::validation_failed().with_field("limit", "must be between 1 and 200")
            );
        }
        let after = match params.cursor.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(Cursor::decode(raw).ok_or_else(|| {
                Problem::validation_failed().with_field("cursor", "is not a valid cursor")
            })?),
        };
        Ok(Self { limit, after })
    }
}

/// A position in a newest-first list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub Uuid);

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        Uuid::from_slice(&bytes).ok().map(Self)
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to fetch the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched newest first; `id` gives a row's key.
    pub fn from_rows(mut rows: Vec<T>, request: &PageRequest, id: impl Fn(&T) -> Uuid) -> Self {
        let limit = request.limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| Cursor(id(last)).encode())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let c = Cursor(Uuid::now_v7());
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("!!"), None);
        assert_eq!(Cursor::decode("AAAA"), None);
    }

    #[test]
    fn limits_are_validated() {
        let p = |limit| {
            PageRequest::try_from(PageParams {
                limit,
                cursor: None,
            })
        };
        assert_eq!(p(None).unwrap().limit, 50);
        assert!(p(Some(0)).is_err());
        assert!(p(Some(201)).is_err());
        assert_eq!(p(Some(200)).unwrap().limit, 200);
        let bad = PageRequest::try_from(PageParams {
            limit: None,
            cursor: Some("zz".into()),
        });
        assert_eq!(bad.unwrap_err().errors[0].field, "cursor");
    }

    #[test]
    fn page_has_cursor_only_when_more_rows_exist() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let req = PageRequest::first(2);
        let page = Page::from_rows(ids.clone(), &req, |u| *u);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_cursor, Some(Cursor(ids[1]).encode()));
        let page = Page::from_rows(ids[..2].to_vec(), &req, |u| *u);
        assert!(page.next_cursor.is_none());
    }
}
