//! Roles of a partner's staff and the permission matrix.
//!
//! The matrix is one table, [`MATRIX`], so that the code that enforces it and the page that
//! documents it (docs/permissions.md, checked by a test) cannot drift apart.

use std::fmt;

/// A person's role within one partner. A person may hold a different role at each partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The account owner: exactly one per partner, cannot be removed or demoted except by
    /// handing Primary to someone else.
    Primary,
    /// Manages people and security settings; with Primary, the break-glass path once SSO
    /// is enforced.
    SecurityAdmin,
    /// Manages the integration: connections, mappings, rules, tokens.
    Admin,
    /// Works with deliveries day to day: retries, test notifications.
    Technician,
    /// Sees everything of the partner, changes nothing.
    ReadOnly,
}

impl Role {
    /// Every role, most powerful first (the column order of the documented matrix).
    pub const ALL: [Role; 5] = [
        Role::Primary,
        Role::SecurityAdmin,
        Role::Admin,
        Role::Technician,
        Role::ReadOnly,
    ];

    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::SecurityAdmin => "security_admin",
            Role::Admin => "admin",
            Role::Technician => "technician",
            Role::ReadOnly => "read_only",
        }
    }

    /// The name people read (documentation, audit log).
    pub fn label(self) -> &'static str {
        match self {
            Role::Primary => "Primary",
            Role::SecurityAdmin => "Security Admin",
            Role::Admin => "Admin",
            Role::Technician => "Technician",
            Role::ReadOnly => "Read-only",
        }
    }

    /// The inverse of [`Role::as_str`].
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Primary and Security Admin: the accounts that must never be silently linked to an
    /// identity provider, nor granted by just-in-time provisioning.
    pub fn is_privileged(self) -> bool {
        matches!(self, Role::Primary | Role::SecurityAdmin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a route lets a person do at one partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// See the partner's settings: partner, clients, connections, PSA lists, rules, mappings.
    ViewSettings,
    /// See deliveries and events.
    ViewDeliveries,
    /// See the audit log.
    ViewAudit,
    /// See the partner's people and their roles.
    ViewUsers,
    /// Change settings: partner, clients, mappings, connections, rules.
    ManageSettings,
    /// Retry deliveries and send test notifications.
    OperateDeliveries,
    /// Create and revoke the partner's API tokens.
    ManageTokens,
    /// Add people, change their roles, deactivate or remove them.
    ManageUsers,
}

impl Permission {
    /// Every permission, in the row order of the documented matrix.
    pub const ALL: [Permission; 8] = [
        Permission::ViewSettings,
        Permission::ViewDeliveries,
        Permission::ViewAudit,
        Permission::ViewUsers,
        Permission::ManageSettings,
        Permission::OperateDeliveries,
        Permission::ManageTokens,
        Permission::ManageUsers,
    ];

    /// The name used in code, tables and documentation.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ViewSettings => "view_settings",
            Permission::ViewDeliveries => "view_deliveries",
            Permission::ViewAudit => "view_audit",
            Permission::ViewUsers => "view_users",
            Permission::ManageSettings => "manage_settings",
            Permission::OperateDeliveries => "operate_deliveries",
            Permission::ManageTokens => "manage_tokens",
            Permission::ManageUsers => "manage_users",
        }
    }

    /// Whether the permission only reads.
    pub fn is_read_only(self) -> bool {
        matches!(
            self,
            Permission::ViewSettings
                | Permission::ViewDeliveries
                | Permission::ViewAudit
                | Permission::ViewUsers
        )
    }
}

const Y: bool = true;
const N: bool = false;

/// THE permission matrix. Columns follow [`Role::ALL`]:
/// Primary, Security Admin, Admin, Technician, Read-only.
pub const MATRIX: [(Permission, [bool; 5]); 8] = [
    (Permission::ViewSettings, [Y, Y, Y, Y, Y]),
    (Permission::ViewDeliveries, [Y, Y, Y, Y, Y]),
    (Permission::ViewAudit, [Y, Y, Y, Y, Y]),
    (Permission::ViewUsers, [Y, Y, Y, Y, Y]),
    (Permission::ManageSettings, [Y, N, Y, N, N]),
    (Permission::OperateDeliveries, [Y, N, Y, Y, N]),
    (Permission::ManageTokens, [Y, N, Y, N, N]),
    (Permission::ManageUsers, [Y, Y, N, N, N]),
];

/// Does `role` grant `permission`?
pub fn allows(role: Role, permission: Permission) -> bool {
    let column = Role::ALL
        .iter()
        .position(|r| *r == role)
        .expect("every role has a column");
    MATRIX
        .iter()
        .find(|(p, _)| *p == permission)
        .is_some_and(|(_, row)| row[column])
}

/// The matrix as a Markdown table, for docs/permissions.md.
pub fn matrix_markdown() -> String {
    let mut out = String::from("| Permission |");
    for role in Role::ALL {
        out.push_str(&format!(" {} |", role.label()));
    }
    out.push_str("\n|---|");
    for _ in Role::ALL {
        out.push_str(":-:|");
    }
    out.push('\n');
    for (permission, _) in MATRIX {
        out.push_str(&format!("| `{}` |", permission.as_str()));
        for role in Role::ALL {
            out.push_str(if allows(role, permission) {
                " yes |"
            } else {
                " — |"
            });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("owner"), None);
        assert_eq!(Role::parse("Primary"), None);
    }

    #[test]
    fn the_matrix_lists_every_permission_once() {
        let mut listed: Vec<_> = MATRIX.iter().map(|(p, _)| *p).collect();
        listed.sort();
        let mut all = Permission::ALL.to_vec();
        all.sort();
        assert_eq!(listed, all);
    }

    #[test]
    fn read_only_reads_everything_and_changes_nothing() {
        for p in Permission::ALL {
            assert_eq!(allows(Role::ReadOnly, p), p.is_read_only(), "{p:?}");
        }
    }

    #[test]
    fn primary_may_do_everything() {
        for p in Permission::ALL {
            assert!(allows(Role::Primary, p), "{p:?}");
        }
    }

    #[test]
    fn only_primary_and_security_admin_manage_people() {
        let managers: Vec<_> = Role::ALL
            .into_iter()
            .filter(|r| allows(*r, Permission::ManageUsers))
            .collect();
        assert_eq!(managers, vec![Role::Primary, Role::SecurityAdmin]);
        assert!(managers.iter().all(|r| r.is_privileged()));
    }

    #[test]
    fn technicians_operate_but_do_not_configure() {
        assert!(allows(Role::Technician, Permission::OperateDeliveries));
        assert!(!allows(Role::Technician, Permission::ManageSettings));
        assert!(!allows(Role::Technician, Permission::ManageTokens));
    }

    #[test]
    fn markdown_has_a_row_per_permission_and_a_column_per_role() {
        let md = matrix_markdown();
        assert_eq!(md.lines().count(), 2 + Permission::ALL.len());
        assert!(md.contains("| `manage_users` | yes | yes | — | — | — |"));
    }
}
