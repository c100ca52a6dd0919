//! What a workspace's filters are compiled against: its fields, stages, statuses, tag tree and companies.

use std::collections::HashMap;

use rapport_domain::{CompanyId, FieldDefinition, FieldEntity, FieldType, TagId, WorkspaceId};
use rapport_store::{Company, ListKind, PageRequest, Store, StoreResult};

use super::facts::{FactValue, fact_value};

/// A workspace's schema as the engine keeps it.
#[derive(Debug, Default)]
pub(crate) struct Schema {
    /// Custom contact fields by key, each with its slot in a contact's facts.
    pub(crate) contact_fields: HashMap<String, (u16, FieldType)>,
    /// Custom company fields by key.
    pub(crate) company_fields: HashMap<String, FieldType>,
    /// Stage keys in order; a contact's stage is stored as its position here.
    pub(crate) stages: Vec<String>,
    pub(crate) statuses: Vec<String>,
    /// Tag ids by path.
    pub(crate) tags: HashMap<String, TagId>,
}

impl Schema {
    pub(crate) async fn load(store: &dyn Store, workspace: WorkspaceId) -> StoreResult<Schema> {
        let mut schema = Schema::default();
        let mut slot = 0u16;
        for field in store.list_fields(workspace, None).await? {
            let FieldDefinition { key, field_type, entity, .. } = field;
            match entity {
                FieldEntity::Contact => {
                    schema.contact_fields.insert(key.into_string(), (slot, field_type));
                    slot = slot.saturating_add(1);
                }
                FieldEntity::Company => {
                    schema.company_fields.insert(key.into_string(), field_type);
                }
            }
        }
        schema.stages = store.list_entries(workspace, ListKind::Stages).await?.into_iter().map(|e| e.key).collect();
        schema.statuses =
            store.list_entries(workspace, ListKind::LeadStatuses).await?.into_iter().map(|e| e.key).collect();
        schema.tags = store.list_tags(workspace).await?.into_iter().map(|tag| (tag.path, tag.id)).collect();
        Ok(schema)
    }

    pub(crate) fn stage_position(&self, key: &str) -> Option<u16> {
        self.stages.iter().position(|stage| stage == key).and_then(|position| u16::try_from(position).ok())
    }

    /// The tag with this path and every tag under it.
    pub(crate) fn tag_subtree(&self, path: &str) -> Vec<TagId> {
        let prefix = format!("{path}/");
        let mut ids: Vec<TagId> = self
            .tags
            .iter()
            .filter(|(candidate, _)| *candidate == path || candidate.starts_with(&prefix))
            .map(|(_, id)| *id)
            .collect();
        ids.sort();
        ids
    }
}

/// A company's values as filters read them (`company.KEY`).
#[derive(Debug, Default, Clone)]
pub(crate) struct CompanyFacts {
    pub(crate) values: HashMap<String, FactValue>,
}

impl CompanyFacts {
    pub(crate) fn new(company: &Company, schema: &Schema) -> CompanyFacts {
        let mut values = HashMap::new();
        let text = |value: &Option<String>| value.as_deref().map(|text| FactValue::Text(text.into()));
        values.insert("name".to_owned(), FactValue::Text(company.name.as_str().into()));
        for (key, value) in [("domain", &company.domain), ("industry", &company.industry), ("size", &company.size)] {
            if let Some(value) = text(value) {
                values.insert(key.to_owned(), value);
            }
        }
        for (key, value) in &company.fields {
            let Some(field_type) = schema.company_fields.get(key) else { continue };
            if let Some(value) = fact_value(*field_type, value) {
                values.insert(key.clone(), value);
            }
        }
        CompanyFacts { values }
    }
}

/// Every company of the workspace.
pub(crate) async fn load_companies(
    store: &dyn Store,
    workspace: WorkspaceId,
    schema: &Schema,
) -> StoreResult<HashMap<CompanyId, CompanyFacts>> {
    let mut companies = HashMap::new();
    let mut after = None;
    loop {
        let page = store.list_companies(workspace, PageRequest { after, limit: 1_000 }).await?;
        for company in &page.items {
            companies.insert(company.id, CompanyFacts::new(company, schema));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(companies),
        }
    }
}
