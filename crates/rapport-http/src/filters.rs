//! A filter on the wire, shared by segments and dynamic tags: it comes in as text (`filter`) or as JSON
//! (`filter_json`), is stored as its canonical text, and goes out in both forms. Parse errors keep their place: a
//! 0-based character offset for text, a JSON path for JSON.

use std::time::Duration;

use rapport_domain::filter::{self, Filter};
use rapport_domain::{SegmentId, TagId, WorkspaceId};
use rapport_engine::audience::{Audience, AudienceError};
use serde_json::{Value, json};

use crate::error::ApiError;

/// The two written forms of a filter as a request carries them; at most one may be present.
#[derive(Debug, Default)]
pub struct FilterForms {
    pub text: Option<String>,
    pub json: Option<Value>,
}

/// A filter that parsed and whose canonical text parses back.
#[derive(Debug, Clone)]
pub struct ParsedFilter {
    pub filter: Filter,
    /// The canonical text form, which is what gets stored.
    pub canonical: String,
}

impl FilterForms {
    /// The filter, `None` when neither form is present. Both forms at once is a validation error.
    pub fn parse(self) -> Result<Option<ParsedFilter>, ApiError> {
        let filter = match (self.text, self.json) {
            (Some(_), Some(_)) => {
                return Err(ApiError::field(
                    "filter",
                    "give the filter either as text (filter) or as JSON (filter_json), not both",
                ));
            }
            (None, None) => return Ok(None),
            (Some(text), None) => filter::parse(&text).map_err(|error| {
                ApiError::bad_request("filter_parse_error", error.to_string())
                    .with_details(json!({"field": "filter", "position": error.position}))
            })?,
            (None, Some(value)) => filter::from_json(&value).map_err(|error| {
                ApiError::bad_request("filter_parse_error", error.to_string())
                    .with_details(json!({"field": "filter_json", "path": error.path}))
            })?,
        };
        let canonical = filter.to_string();
        // Only JSON can say something the text form cannot (an empty `and` or `or` group); such a filter could not
        // be read back once stored.
        if let Err(error) = filter::parse(&canonical) {
            return Err(ApiError::bad_request(
                "invalid_filter",
                format!(
                    "this filter has no text form, so it cannot be saved (is there an empty \"and\" or \"or\" group?): {error}"
                ),
            ));
        }
        Ok(Some(ParsedFilter { filter, canonical }))
    }

    /// The filter, which must be present.
    pub fn require(self) -> Result<ParsedFilter, ApiError> {
        self.parse()?.ok_or_else(|| {
            ApiError::field("filter", "give the filter either as text (filter) or as JSON (filter_json)")
        })
    }
}

/// How long a request waits for the audience engine to apply what was committed before it.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until the audience engine has applied everything committed before this call. The engine checks and
/// previews filters against the workspace as it has applied it, a moment behind the store (and, while it loads
/// after a start, as it was when the load began): without this, a custom field, tag or segment created just before
/// would read as unknown. An engine that does not catch up in time answers `503 audience_loading`.
pub async fn catch_up(audience: &Audience) -> Result<(), ApiError> {
    match tokio::time::timeout(CATCH_UP_TIMEOUT, audience.settle()).await {
        Ok(settled) => Ok(settled?),
        Err(_) => Err(ApiError::unavailable(
            "audience_loading",
            "the audience engine is catching up with recent changes; try again in a moment",
            1,
        )),
    }
}

/// Checks a filter against the workspace as it is now (names, types, and for `this` that no segment would contain
/// itself).
pub async fn check_filter(
    audience: &Audience,
    workspace: WorkspaceId,
    filter: &ParsedFilter,
    this: Option<SegmentId>,
) -> Result<(), ApiError> {
    catch_up(audience).await?;
    audience.check(workspace, &filter.filter, this).await.map_err(audience_error)
}

/// Checks a dynamic tag's rule like [`check_filter`], and that it does not depend on the tag itself.
pub async fn check_tag_rule(
    audience: &Audience,
    workspace: WorkspaceId,
    filter: &ParsedFilter,
    tag: TagId,
) -> Result<(), ApiError> {
    catch_up(audience).await?;
    audience.check_tag_rule(workspace, &filter.filter, tag).await.map_err(audience_error)
}

/// The JSON form of a stored (canonical text) filter; `null` if it somehow no longer parses.
pub fn stored_filter_json(text: &str) -> Value {
    filter::parse(text).map(|filter| filter::to_json(&filter)).unwrap_or(Value::Null)
}

pub fn audience_error(error: AudienceError) -> ApiError {
    match error {
        AudienceError::Problem(problem) => ApiError::bad_request(problem.code, problem.message),
        AudienceError::Loading => ApiError::unavailable(
            "audience_loading",
            "the audience engine is still reading the workspace after a start; try again in a moment",
            1,
        ),
        AudienceError::Store(error) => error.into(),
    }
}
