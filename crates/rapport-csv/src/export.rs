//! Every contact of a workspace as CSV, streamed page by page in constant memory (`rapport export contacts` and the
//! API's export jobs).
//!
//! The file starts with a UTF-8 byte order mark: without it Excel reads a CSV in the system's code page and shows
//! Chinese as mojibake. `rapport import` skips the mark, so an export imports back as it is.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use rapport_domain::{Contact, FieldEntity, SegmentId, WorkspaceId};
use rapport_store::{Page, PageRequest, Store};
use serde_json::Value;
use tokio::sync::mpsc;

/// Contacts per `list_contacts` page.
const PAGE_SIZE: u32 = 1_000;
const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// The fixed columns, followed by one `fields.KEY` column per custom contact field in definition order.
pub const CONTACT_COLUMNS: [&str; 19] = [
    "id",
    "email",
    "phone",
    "user_id",
    "first_name",
    "last_name",
    "title",
    "company_name",
    "city",
    "province",
    "country",
    "source",
    "stage",
    "status",
    "owner_id",
    "company_id",
    "tags",
    "created_at",
    "updated_at",
];

/// Which contacts an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportScope {
    /// Every contact, most recently updated first.
    All,
    /// A segment's members, in id order.
    Segment(SegmentId),
}

/// Lets the caller watch an export and stop it: `written` counts contacts written so far, `stop` ends the export
/// after the page being written.
#[derive(Debug, Default)]
pub struct ExportControl {
    pub written: AtomicU64,
    pub stop: AtomicBool,
}

/// Writes the workspace's contacts in `scope` to `out` and returns how many were written. A writer thread formats
/// and writes one page while the next is read. With `ExportScope::All`, contacts changed while the export runs may
/// appear twice or not at all: the listing is keyed by `updated_at`. A segment's members are read in id order;
/// a segment that does not exist is an error before anything is written.
pub async fn export_contacts(
    store: Arc<dyn Store>,
    workspace: WorkspaceId,
    scope: ExportScope,
    out: impl Write + Send + 'static,
    control: Arc<ExportControl>,
) -> anyhow::Result<u64> {
    if let ExportScope::Segment(segment) = scope {
        store.get_segment(workspace, segment).await.context("looking up the segment")?;
    }
    let keys: Vec<String> = store
        .list_fields(workspace, Some(FieldEntity::Contact))
        .await
        .context("loading the custom fields")?
        .into_iter()
        .map(|definition| definition.key.into_string())
        .collect();

    // Two pages in flight at most: waiting for room in the channel is the back-pressure that keeps memory flat.
    let (pages, mut received) = mpsc::channel::<Vec<Contact>>(2);
    let counter = control.clone();
    let writing = tokio::task::spawn_blocking(move || {
        write_csv(out, &keys, std::iter::from_fn(|| received.blocking_recv()), &counter.written)
    });
    let read = match scope {
        ExportScope::All => {
            read_pages(&pages, &control.stop, |after| {
                let store = store.clone();
                async move {
                    let page = PageRequest { after, limit: PAGE_SIZE };
                    store.list_contacts(workspace, page).await.context("listing contacts")
                }
            })
            .await
        }
        ExportScope::Segment(segment) => {
            read_pages(&pages, &control.stop, |after| {
                let store = store.clone();
                async move {
                    let page = PageRequest { after, limit: PAGE_SIZE };
                    store.segment_contacts(workspace, segment, page).await.context("listing the segment's contacts")
                }
            })
            .await
        }
    };
    drop(pages);
    let written = writing.await.context("the CSV writer stopped")?;
    // A failed write closes the channel, which ends the reading early: the write error is the one to report.
    let written = written?;
    read?;
    Ok(written)
}

/// Sends pages from `fetch` (given the previous page's cursor) until the last one, a stop request, or a closed
/// channel.
async fn read_pages<C, F>(
    pages: &mpsc::Sender<Vec<Contact>>,
    stop: &AtomicBool,
    fetch: impl Fn(Option<C>) -> F,
) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<Page<Contact, C>>>,
{
    let mut after = None;
    while !stop.load(Ordering::Relaxed) {
        let page = fetch(after).await?;
        if pages.send(page.items).await.is_err() {
            return Ok(());
        }
        match page.next {
            Some(cursor) => after = Some(cursor),
            None => return Ok(()),
        }
    }
    Ok(())
}

fn write_csv(
    out: impl Write,
    keys: &[String],
    pages: impl Iterator<Item = Vec<Contact>>,
    counter: &AtomicU64,
) -> anyhow::Result<u64> {
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, out);
    out.write_all(BYTE_ORDER_MARK).context("writing the CSV")?;
    let mut writer = csv::Writer::from_writer(out);
    let header =
        CONTACT_COLUMNS.iter().map(|column| (*column).to_owned()).chain(keys.iter().map(|key| format!("fields.{key}")));
    writer.write_record(header).context("writing the CSV")?;
    let mut written = 0;
    let mut cells: Vec<String> = Vec::with_capacity(CONTACT_COLUMNS.len() + keys.len());
    for page in pages {
        for contact in page {
            cells.clear();
            contact_cells(&contact, keys, &mut cells);
            writer.write_record(&cells).context("writing the CSV")?;
            written += 1;
        }
        counter.store(written, Ordering::Relaxed);
    }
    writer.flush().context("writing the CSV")?;
    Ok(written)
}

fn contact_cells(contact: &Contact, keys: &[String], cells: &mut Vec<String>) {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    cells.extend([
        contact.id.to_string(),
        text(&contact.email),
        text(&contact.phone),
        text(&contact.user_id),
        text(&contact.first_name),
        text(&contact.last_name),
        text(&contact.title),
        text(&contact.company_name),
        text(&contact.city),
        text(&contact.province),
        text(&contact.country),
        text(&contact.source),
        contact.stage.clone(),
        text(&contact.status),
        contact.owner_id.map(|id| id.to_string()).unwrap_or_default(),
        contact.company_id.map(|id| id.to_string()).unwrap_or_default(),
        contact.tags.join(","),
        time(contact.created_at),
        time(contact.updated_at),
    ]);
    cells.extend(keys.iter().map(|key| contact.fields.get(key).map(field_cell).unwrap_or_default()));
}

/// A custom value as spreadsheet text: multi-select options joined with `,` like tags, so the file imports back.
fn field_cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// The same form as the REST API: RFC 3339 in UTC.
fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
