//! Roles and what they may do. The server enforces these; the console only reflects them.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    SalesRep,
    SalesManager,
    Marketer,
    Admin,
    Owner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read contacts, companies, the tag library, stages and every other workspace record.
    Read,
    /// Create and update contacts and companies, tag them, write notes, record events.
    WriteContacts,
    /// Erase a person and their events (the data-subject erasure path).
    EraseContacts,
    /// Change the workspace's schema: custom fields, the tag library, stages, lead statuses, note templates.
    ManageSchema,
    /// Invite, change and remove users; create and revoke API keys.
    ManageAccess,
}

impl Role {
    pub const ALL: [Role; 6] =
        [Role::Owner, Role::Admin, Role::Marketer, Role::SalesManager, Role::SalesRep, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Marketer => "marketer",
            Role::SalesManager => "sales_manager",
            Role::SalesRep => "sales_rep",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }

    pub fn allows(self, permission: Permission) -> bool {
        match permission {
            Permission::Read => true,
            Permission::WriteContacts => self != Role::Viewer,
            Permission::EraseContacts | Permission::ManageSchema => {
                matches!(self, Role::Owner | Role::Admin | Role::Marketer)
            }
            Permission::ManageAccess => matches!(self, Role::Owner | Role::Admin),
        }
    }

    /// Whether someone with this role may hand out `other` (to a user or an API key): never a role above one's own.
    pub fn may_grant(self, other: Role) -> bool {
        self.allows(Permission::ManageAccess) && other <= self
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions() {
        assert!(Role::Viewer.allows(Permission::Read));
        assert!(!Role::Viewer.allows(Permission::WriteContacts));
        assert!(Role::SalesRep.allows(Permission::WriteContacts));
        assert!(!Role::SalesRep.allows(Permission::EraseContacts));
        assert!(Role::Marketer.allows(Permission::ManageSchema));
        assert!(!Role::Marketer.allows(Permission::ManageAccess));
        assert!(Role::Admin.may_grant(Role::Admin));
        assert!(!Role::Admin.may_grant(Role::Owner));
        assert!(Role::Owner.may_grant(Role::Owner));
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }
}
