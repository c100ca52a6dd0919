//! Which CSV column goes to which contact field: `--map COLUMN=FIELD` pairs, or, without them, headers that name a
//! field, a common Chinese or English header, or a custom field's label.

use rapport_domain::FieldDefinition;

/// The fields a column can fill, as written in `--map` and in the header table of `docs/import-export.md`.
pub const FIELD_NAMES: [&str; 14] = [
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
    "tags",
];

/// Headers that map without `--map` besides the field names themselves, compared after [`normalise_header`].
/// `姓名` goes to `first_name` whole: splitting a Chinese name into family and given name is guesswork (欧阳, 司马),
/// so files with separate `姓` and `名` columns map those instead.
pub const HEADER_ALIASES: [(&str, &str); 38] = [
    ("邮箱", "email"),
    ("电子邮件", "email"),
    ("电子邮箱", "email"),
    ("邮件", "email"),
    ("e_mail", "email"),
    ("email_address", "email"),
    ("手机", "phone"),
    ("手机号", "phone"),
    ("手机号码", "phone"),
    ("电话", "phone"),
    ("电话号码", "phone"),
    ("联系电话", "phone"),
    ("mobile", "phone"),
    ("phone_number", "phone"),
    ("用户id", "user_id"),
    ("姓名", "first_name"),
    ("名字", "first_name"),
    ("名", "first_name"),
    ("name", "first_name"),
    ("full_name", "first_name"),
    ("姓", "last_name"),
    ("公司", "company_name"),
    ("公司名称", "company_name"),
    ("单位", "company_name"),
    ("company", "company_name"),
    ("职位", "title"),
    ("职务", "title"),
    ("job_title", "title"),
    ("城市", "city"),
    ("省份", "province"),
    ("省", "province"),
    ("国家", "country"),
    ("来源", "source"),
    ("阶段", "stage"),
    ("生命周期阶段", "stage"),
    ("状态", "status"),
    ("线索状态", "status"),
    ("标签", "tags"),
];

/// A system text field of a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    FirstName,
    LastName,
    Title,
    CompanyName,
    City,
    Province,
    Country,
    Source,
}

/// Where a column's values go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Email,
    Phone,
    UserId,
    Text(TextField),
    Stage,
    Status,
    /// Several tag paths separated by `,` `，` `;` or `|`; they are added to the contact's tags.
    Tags,
    Field(FieldDefinition),
}

impl Target {
    /// Parses a field name as written in `--map`: one of [`FIELD_NAMES`] or `fields.KEY` of an existing custom field.
    pub fn parse(name: &str, definitions: &[FieldDefinition]) -> Result<Target, String> {
        let name = name.trim();
        if let Some(key) = name.strip_prefix("fields.") {
            return definitions
                .iter()
                .find(|definition| definition.key.as_str() == key)
                .map(|definition| Target::Field(definition.clone()))
                .ok_or_else(|| {
                    format!(
                        "`{name}` is not a custom field of this workspace (create it first with POST /api/v1/fields)"
                    )
                });
        }
        let target = match name {
            "email" => Target::Email,
            "phone" => Target::Phone,
            "user_id" => Target::UserId,
            "first_name" => Target::Text(TextField::FirstName),
            "last_name" => Target::Text(TextField::LastName),
            "title" => Target::Text(TextField::Title),
            "company_name" => Target::Text(TextField::CompanyName),
            "city" => Target::Text(TextField::City),
            "province" => Target::Text(TextField::Province),
            "country" => Target::Text(TextField::Country),
            "source" => Target::Text(TextField::Source),
            "stage" => Target::Stage,
            "status" => Target::Status,
            "tags" => Target::Tags,
            _ => {
                return Err(format!("unknown field `{name}`: use {} or fields.KEY", FIELD_NAMES.join(", ")));
            }
        };
        Ok(target)
    }

    pub fn name(&self) -> String {
        match self {
            Target::Field(definition) => format!("fields.{}", definition.key.as_str()),
            other => other.system_name().to_owned(),
        }
    }

    fn system_name(&self) -> &'static str {
        match self {
            Target::Email => "email",
            Target::Phone => "phone",
            Target::UserId => "user_id",
            Target::Text(TextField::FirstName) => "first_name",
            Target::Text(TextField::LastName) => "last_name",
            Target::Text(TextField::Title) => "title",
            Target::Text(TextField::CompanyName) => "company_name",
            Target::Text(TextField::City) => "city",
            Target::Text(TextField::Province) => "province",
            Target::Text(TextField::Country) => "country",
            Target::Text(TextField::Source) => "source",
            Target::Stage => "stage",
            Target::Status => "status",
            Target::Tags => "tags",
            Target::Field(_) => "fields",
        }
    }
}

/// One `--map COLUMN=FIELD` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMapping {
    pub column: String,
    pub field: String,
}

impl ColumnMapping {
    /// Splits at the last `=`, so that a column name may itself contain one.
    pub fn parse(raw: &str) -> Result<ColumnMapping, String> {
        let (column, field) =
            raw.rsplit_once('=').ok_or_else(|| format!("--map {raw:?} must look like COLUMN=FIELD"))?;
        let column = column.trim();
        if column.is_empty() {
            return Err(format!("--map {raw:?} names no column"));
        }
        Ok(ColumnMapping { column: column.to_owned(), field: field.trim().to_owned() })
    }
}

/// A column that is imported.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedColumn {
    /// Zero-based position in the record.
    pub index: usize,
    pub header: String,
    pub target: Target,
}

/// Every column of the file, either mapped or ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnPlan {
    pub columns: Vec<MappedColumn>,
    pub ignored: Vec<String>,
    pub header_count: usize,
}

impl ColumnPlan {
    /// With explicit mappings only those columns are imported; without, every header that names a field (see
    /// [`auto_target`]) is. Errors are fatal: an unknown column or field, a field filled by two columns, nothing
    /// mapped at all.
    pub fn new(
        headers: &[String],
        explicit: &[ColumnMapping],
        definitions: &[FieldDefinition],
    ) -> Result<ColumnPlan, String> {
        let mut columns = Vec::new();
        if explicit.is_empty() {
            for (index, header) in headers.iter().enumerate() {
                if let Some(target) = auto_target(header, definitions)? {
                    columns.push(MappedColumn { index, header: header.clone(), target });
                }
            }
        } else {
            for mapping in explicit {
                let mut positions = headers
                    .iter()
                    .enumerate()
                    .filter(|(_, header)| header.trim() == mapping.column)
                    .map(|(index, _)| index);
                let index = positions.next().ok_or_else(|| {
                    format!("--map: the file has no column {:?} (its columns: {})", mapping.column, headers.join(", "))
                })?;
                if positions.next().is_some() {
                    return Err(format!("--map: the file has more than one column {:?}", mapping.column));
                }
                let target = Target::parse(&mapping.field, definitions)
                    .map_err(|error| format!("--map {}={}: {error}", mapping.column, mapping.field))?;
                columns.push(MappedColumn { index, header: headers[index].clone(), target });
            }
            columns.sort_by_key(|column| column.index);
        }
        for (position, column) in columns.iter().enumerate() {
            if column.target == Target::Tags {
                continue;
            }
            if let Some(earlier) = columns[..position].iter().find(|earlier| earlier.target == column.target) {
                return Err(format!(
                    "columns {:?} and {:?} both map to {}; map one of them with --map",
                    earlier.header,
                    column.header,
                    column.target.name()
                ));
            }
        }
        if columns.is_empty() {
            return Err(format!(
                "no column maps to a contact field (columns: {}); name them with --map COLUMN=FIELD",
                headers.join(", ")
            ));
        }
        let ignored = headers
            .iter()
            .enumerate()
            .filter(|(index, _)| !columns.iter().any(|column| column.index == *index))
            .map(|(_, header)| header.clone())
            .collect();
        Ok(ColumnPlan { columns, ignored, header_count: headers.len() })
    }
}

/// The field a header names by itself: a field name or `fields.KEY`, an alias from [`HEADER_ALIASES`], or the key
/// or label of a custom field. A `fields.KEY` header for a field that does not exist is an error rather than an
/// ignored column, because its data would otherwise be dropped without a word.
pub fn auto_target(header: &str, definitions: &[FieldDefinition]) -> Result<Option<Target>, String> {
    let trimmed = header.trim();
    if trimmed.starts_with("fields.") {
        return Target::parse(trimmed, definitions).map(Some).map_err(|error| format!("column {trimmed:?}: {error}"));
    }
    let normalised = normalise_header(trimmed);
    let name =
        HEADER_ALIASES.iter().find(|(alias, _)| *alias == normalised).map_or(normalised.as_str(), |(_, name)| name);
    if let Ok(target) = Target::parse(name, &[]) {
        return Ok(Some(target));
    }
    let custom = definitions
        .iter()
        .find(|definition| definition.key.as_str() == normalised || definition.label.trim() == trimmed);
    Ok(custom.map(|definition| Target::Field(definition.clone())))
}

/// Lower-cases ASCII and reads spaces and dashes as underscores: `E-mail` → `e_mail`, `First Name` → `first_name`.
pub fn normalise_header(header: &str) -> String {
    header
        .trim()
        .chars()
        .map(|c| match c {
            ' ' | '-' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(headers: &[&str], maps: &[&str]) -> String {
        let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
        let maps: Vec<ColumnMapping> =
            maps.iter().map(|raw| ColumnMapping::parse(raw).unwrap_or_else(|error| panic!("{error}"))).collect();
        match ColumnPlan::new(&headers, &maps, &[]) {
            Ok(plan) => {
                let mapped: Vec<String> =
                    plan.columns.iter().map(|column| format!("{}→{}", column.header, column.target.name())).collect();
                format!("{} | ignored: {}", mapped.join(" "), plan.ignored.join(" "))
            }
            Err(error) => format!("error: {error}"),
        }
    }

    #[test]
    fn headers_map_by_name_alias_or_explicit_mapping() {
        let cases = [
            (
                plan(&["E-mail", "手机号", "姓名", "公司", "备注"], &[]),
                "E-mail→email 手机号→phone 姓名→first_name 公司→company_name | ignored: 备注",
            ),
            (
                plan(&["Email", "First Name", "Tags", "标签"], &[]),
                "Email→email First Name→first_name Tags→tags 标签→tags | ignored: ",
            ),
            (plan(&["a", "b=c"], &["b=c=email"]), "b=c→email | ignored: a"),
            (
                plan(&["邮箱", "电子邮件"], &[]),
                r#"error: columns "邮箱" and "电子邮件" both map to email; map one of them with --map"#,
            ),
            (plan(&["邮箱"], &["mail=email"]), r#"error: --map: the file has no column "mail" (its columns: 邮箱)"#),
            (
                plan(&["邮箱"], &["邮箱=e-mail"]),
                "error: --map 邮箱=e-mail: unknown field `e-mail`: use email, phone, user_id, first_name, last_name, \
                 title, company_name, city, province, country, source, stage, status, tags or fields.KEY",
            ),
            (
                plan(&["fields.budget"], &[]),
                r#"error: column "fields.budget": `fields.budget` is not a custom field of this workspace (create it first with POST /api/v1/fields)"#,
            ),
        ];
        for (actual, expected) in cases {
            assert_eq!(actual, expected);
        }
    }
}
