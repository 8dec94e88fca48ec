//! "Log in with the IdP": the decisions, with no I/O.
//!
//! Three questions are answered here so that the web layer only gathers facts and acts:
//!
//! - [`decide_link`]: a person logged in at the identity provider with an identity
//!   `(issuer, subject)` that is linked to no account yet. Link it to an existing account,
//!   ask the person to prove that account once (password + TOTP), create an account
//!   (just-in-time provisioning) or refuse?
//! - [`decide_local_login`]: a person proved their password (and code). Does their partner
//!   require the identity provider, and if so, are they exempt?
//! - [`can_require_idp`]: may a partner turn "Require login with the IdP" on now?
//!
//! The rules follow what identity products converged on: identities are keyed on
//! `(issuer, subject)`, never on email; an email links silently only when the provider says it
//! is verified, exactly one account has it and that account is not privileged; privileged
//! people (Primary, Security Admin) are never linked silently, never provisioned and always keep
//! their password login as the way back in when the provider fails.

use crate::Role;
use std::fmt;

/// An existing account whose email equals the one the identity provider sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub user_id: i64,
    /// The person is not deactivated.
    pub active: bool,
    /// The person's roles at every partner (a person privileged anywhere is privileged).
    pub roles: Vec<Role>,
    /// The person has a password and a confirmed TOTP authenticator, so can prove the account.
    pub can_prove_account: bool,
    /// The person is a member of the partner whose provider vouched for the identity. Only
    /// then is the account in scope: another partner's provider must not claim it.
    pub member_of_partner: bool,
}

impl Candidate {
    /// Primary or Security Admin at some partner.
    pub fn is_privileged(&self) -> bool {
        self.roles.iter().any(|r| r.is_privileged())
    }
}

/// What the identity provider said about the person, as far as linking is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEmail {
    /// The email claim, if any.
    pub email: Option<String>,
    /// Only a JSON `true` counts; absent, `false` or a string are all unverified.
    pub verified: bool,
}

/// Just-in-time provisioning of a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provisioning {
    pub enabled: bool,
    /// The role a provisioned person gets; never a privileged one.
    pub default_role: Role,
}

impl Default for Provisioning {
    /// Off, and Read-only when turned on without a choice.
    fn default() -> Self {
        Provisioning {
            enabled: false,
            default_role: Role::ReadOnly,
        }
    }
}

/// What to do with a new identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkDecision {
    /// Link the identity to this account and log in.
    Link(i64),
    /// Ask for this account's password and TOTP code once, then link.
    ConfirmWithPassword(i64),
    /// Create an account with this role at the partner, link and log in.
    Provision(Role),
    /// Refuse the login.
    Deny(LinkDenial),
}

/// Why a new identity is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkDenial {
    /// The provider sent no email: nothing to link by, nothing to provision with.
    NoEmail,
    /// No account has the email and the provider's email is not verified, so it may not be
    /// used to create one.
    UnverifiedEmail,
    /// No account has the email and the partner does not provision accounts.
    ProvisioningOff,
    /// The partner's default role for provisioning is privileged (never granted this way).
    PrivilegedDefaultRole,
    /// The matching account is deactivated.
    Deactivated,
    /// Several accounts have the email; linking any one would be a guess.
    SeveralAccounts,
    /// The account needs confirming but has no password and TOTP to confirm with.
    CannotProveAccount,
    /// The email is an account of other partners only: this partner's provider may neither
    /// link it nor create a second account with it (its administrator adds the person).
    OutsidePartner,
}

impl LinkDenial {
    /// The name used in the audit log and in API errors.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkDenial::NoEmail => "no_email",
            LinkDenial::UnverifiedEmail => "unverified_email",
            LinkDenial::ProvisioningOff => "provisioning_off",
            LinkDenial::PrivilegedDefaultRole => "privileged_default_role",
            LinkDenial::Deactivated => "deactivated",
            LinkDenial::SeveralAccounts => "several_accounts",
            LinkDenial::CannotProveAccount => "cannot_prove_account",
            LinkDenial::OutsidePartner => "outside_partner",
        }
    }

    /// A sentence for the person who tried to log in.
    pub fn message(self) -> &'static str {
        match self {
            LinkDenial::NoEmail => "the identity provider sent no email address",
            LinkDenial::UnverifiedEmail => {
                "the identity provider has not verified this email address"
            }
            LinkDenial::ProvisioningOff => {
                "no account has this email address; ask an administrator to invite you"
            }
            LinkDenial::PrivilegedDefaultRole => {
                "accounts cannot be created with a privileged role"
            }
            LinkDenial::Deactivated => "this account is deactivated",
            LinkDenial::SeveralAccounts => "several accounts have this email address",
            LinkDenial::CannotProveAccount => {
                "this account must be confirmed with its password and TOTP code, and has none"
            }
            LinkDenial::OutsidePartner => {
                "this email belongs to an account of another partner; ask an administrator to add you"
            }
        }
    }
}

impl fmt::Display for LinkDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decide what to do with an identity that is linked to no account yet.
///
/// `candidates` are the accounts whose email equals `email.email` (case-insensitively).
/// An identity that is linked already never comes here: it logs in as its account.
pub fn decide_link(
    email: &ProviderEmail,
    candidates: &[Candidate],
    provisioning: Provisioning,
) -> LinkDecision {
    let has_email = email.email.as_deref().is_some_and(|e| !e.trim().is_empty());
    if !has_email {
        return LinkDecision::Deny(LinkDenial::NoEmail);
    }
    match candidates {
        [] => {
            if !email.verified {
                LinkDecision::Deny(LinkDenial::UnverifiedEmail)
            } else if !provisioning.enabled {
                LinkDecision::Deny(LinkDenial::ProvisioningOff)
            } else if provisioning.default_role.is_privileged() {
                LinkDecision::Deny(LinkDenial::PrivilegedDefaultRole)
            } else {
                LinkDecision::Provision(provisioning.default_role)
            }
        }
        [one] => {
            if !one.member_of_partner {
                LinkDecision::Deny(LinkDenial::OutsidePartner)
            } else if !one.active {
                LinkDecision::Deny(LinkDenial::Deactivated)
            } else if email.verified && !one.is_privileged() {
                LinkDecision::Link(one.user_id)
            } else if one.can_prove_account {
                LinkDecision::ConfirmWithPassword(one.user_id)
            } else {
                LinkDecision::Deny(LinkDenial::CannotProveAccount)
            }
        }
        _ => LinkDecision::Deny(LinkDenial::SeveralAccounts),
    }
}

/// The facts about a password login that "Require login with the IdP" looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalLoginFacts {
    /// The partner of the person's only active membership requires the identity provider.
    /// (With several memberships, [`LocalLoginFacts::partner_count`] decides.)
    pub partner_requires_idp: bool,
    /// The person's role at that partner.
    pub role: Role,
    /// The person is on the partner's list of exceptions.
    pub listed_exception: bool,
    /// How many partners the person's email is a member of.
    pub partner_count: usize,
}

/// The outcome for a password login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Enforcement {
    /// The partner does not require the identity provider.
    NotRequired,
    /// Required, but this person is exempt.
    Exempt(Exemption),
    /// Required and not exempt: refuse the password login.
    RequireIdp,
}

/// Why a person keeps their password login although the partner requires the IdP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exemption {
    /// The Primary user: the break-glass account.
    Primary,
    /// A Security Admin: can turn the switch off when the provider fails.
    SecurityAdmin,
    /// On the partner's list of exceptions.
    Listed,
    /// The email is a member of several partners, which may not all use the same provider.
    SeveralPartners,
}

impl Exemption {
    /// The name used in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Exemption::Primary => "primary",
            Exemption::SecurityAdmin => "security_admin",
            Exemption::Listed => "listed",
            Exemption::SeveralPartners => "several_partners",
        }
    }
}

impl Enforcement {
    /// Whether the password login may go on.
    pub fn allows(self) -> bool {
        !matches!(self, Enforcement::RequireIdp)
    }

    /// The name used in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::NotRequired => "not_required",
            Enforcement::Exempt(e) => e.as_str(),
            Enforcement::RequireIdp => "require_idp",
        }
    }
}

/// Decide whether a proven password login may go on.
pub fn decide_local_login(f: LocalLoginFacts) -> Enforcement {
    if f.partner_count > 1 {
        // Checked first: with several partners, "the partner" is not one partner.
        return Enforcement::Exempt(Exemption::SeveralPartners);
    }
    if !f.partner_requires_idp {
        return Enforcement::NotRequired;
    }
    match f.role {
        Role::Primary => Enforcement::Exempt(Exemption::Primary),
        Role::SecurityAdmin => Enforcement::Exempt(Exemption::SecurityAdmin),
        _ if f.listed_exception => Enforcement::Exempt(Exemption::Listed),
        _ => Enforcement::RequireIdp,
    }
}

/// The roles whose first login through the identity provider proves the setup works, so that
/// the partner may require it: those who can manage the integration or its people.
pub fn proves_idp_setup(role: Role) -> bool {
    matches!(role, Role::Primary | Role::SecurityAdmin | Role::Admin)
}

/// Why "Require login with the IdP" cannot be turned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchRefusal {
    /// The partner has no identity provider configured.
    NotConfigured,
    /// No administrator has logged in through the provider yet: turning it on could lock
    /// everyone out of a broken setup.
    NoAdminIdpLogin,
}

impl SwitchRefusal {
    /// A sentence for the administrator.
    pub fn message(self) -> &'static str {
        match self {
            SwitchRefusal::NotConfigured => "configure the identity provider first",
            SwitchRefusal::NoAdminIdpLogin => {
                "an administrator must log in through the identity provider once before it can be required"
            }
        }
    }
}

/// May the partner require the identity provider? `first_admin_idp_login` is when an
/// administrator ([`proves_idp_setup`]) first logged in through it, if ever.
pub fn can_require_idp(
    configured: bool,
    first_admin_idp_login: Option<i64>,
) -> Result<(), SwitchRefusal> {
    if !configured {
        Err(SwitchRefusal::NotConfigured)
    } else if first_admin_idp_login.is_none() {
        Err(SwitchRefusal::NoAdminIdpLogin)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn verified(e: &str) -> ProviderEmail {
        ProviderEmail {
            email: Some(e.into()),
            verified: true,
        }
    }

    fn unverified(e: &str) -> ProviderEmail {
        ProviderEmail {
            email: Some(e.into()),
            verified: false,
        }
    }

    fn account(id: i64, roles: &[Role]) -> Candidate {
        Candidate {
            user_id: id,
            active: true,
            roles: roles.to_vec(),
            can_prove_account: true,
            member_of_partner: true,
        }
    }

    const JIT_OFF: Provisioning = Provisioning {
        enabled: false,
        default_role: Role::ReadOnly,
    };
    const JIT_READ_ONLY: Provisioning = Provisioning {
        enabled: true,
        default_role: Role::ReadOnly,
    };

    #[test]
    fn provisioning_defaults_to_off_and_read_only() {
        assert_eq!(Provisioning::default(), JIT_OFF);
    }

    #[test]
    fn one_verified_unprivileged_match_links() {
        for role in [Role::Admin, Role::Technician, Role::ReadOnly] {
            assert_eq!(
                decide_link(&verified("a@x.test"), &[account(7, &[role])], JIT_OFF),
                LinkDecision::Link(7)
            );
        }
    }

    #[test]
    fn a_privileged_match_confirms_even_with_a_verified_email() {
        for role in [Role::Primary, Role::SecurityAdmin] {
            assert_eq!(
                decide_link(
                    &verified("a@x.test"),
                    &[account(7, &[Role::ReadOnly, role])],
                    JIT_READ_ONLY
                ),
                LinkDecision::ConfirmWithPassword(7)
            );
        }
    }

    #[test]
    fn an_unverified_email_confirms_and_never_provisions() {
        assert_eq!(
            decide_link(
                &unverified("a@x.test"),
                &[account(7, &[Role::Technician])],
                JIT_OFF
            ),
            LinkDecision::ConfirmWithPassword(7)
        );
        assert_eq!(
            decide_link(&unverified("a@x.test"), &[], JIT_READ_ONLY),
            LinkDecision::Deny(LinkDenial::UnverifiedEmail)
        );
    }

    #[test]
    fn confirming_needs_a_password_and_totp() {
        let mut c = account(7, &[Role::Primary]);
        c.can_prove_account = false;
        assert_eq!(
            decide_link(&verified("a@x.test"), &[c], JIT_OFF),
            LinkDecision::Deny(LinkDenial::CannotProveAccount)
        );
    }

    #[test]
    fn no_match_provisions_only_when_on_and_unprivileged() {
        assert_eq!(
            decide_link(&verified("a@x.test"), &[], JIT_OFF),
            LinkDecision::Deny(LinkDenial::ProvisioningOff)
        );
        assert_eq!(
            decide_link(&verified("a@x.test"), &[], JIT_READ_ONLY),
            LinkDecision::Provision(Role::ReadOnly)
        );
        let technician = Provisioning {
            enabled: true,
            default_role: Role::Technician,
        };
        assert_eq!(
            decide_link(&verified("a@x.test"), &[], technician),
            LinkDecision::Provision(Role::Technician)
        );
        for role in [Role::Primary, Role::SecurityAdmin] {
            let p = Provisioning {
                enabled: true,
                default_role: role,
            };
            assert_eq!(
                decide_link(&verified("a@x.test"), &[], p),
                LinkDecision::Deny(LinkDenial::PrivilegedDefaultRole)
            );
        }
    }

    #[test]
    fn another_partners_account_is_out_of_scope() {
        let mut elsewhere = account(7, &[Role::ReadOnly]);
        elsewhere.member_of_partner = false;
        assert_eq!(
            decide_link(&verified("a@x.test"), &[elsewhere], JIT_READ_ONLY),
            LinkDecision::Deny(LinkDenial::OutsidePartner)
        );
    }

    #[test]
    fn deactivated_several_and_missing_email_are_denied() {
        let mut gone = account(7, &[Role::ReadOnly]);
        gone.active = false;
        assert_eq!(
            decide_link(&verified("a@x.test"), &[gone], JIT_READ_ONLY),
            LinkDecision::Deny(LinkDenial::Deactivated)
        );
        assert_eq!(
            decide_link(
                &verified("a@x.test"),
                &[account(1, &[Role::ReadOnly]), account(2, &[Role::ReadOnly])],
                JIT_READ_ONLY
            ),
            LinkDecision::Deny(LinkDenial::SeveralAccounts)
        );
        for email in [None, Some(String::new()), Some("  ".into())] {
            assert_eq!(
                decide_link(
                    &ProviderEmail {
                        email,
                        verified: true
                    },
                    &[],
                    JIT_READ_ONLY
                ),
                LinkDecision::Deny(LinkDenial::NoEmail)
            );
        }
    }

    fn facts(requires: bool, role: Role, listed: bool, partners: usize) -> LocalLoginFacts {
        LocalLoginFacts {
            partner_requires_idp: requires,
            role,
            listed_exception: listed,
            partner_count: partners,
        }
    }

    #[test]
    fn enforcement_refuses_only_unexempt_people_of_requiring_partners() {
        for role in Role::ALL {
            assert_eq!(
                decide_local_login(facts(false, role, false, 1)),
                Enforcement::NotRequired
            );
        }
        assert_eq!(
            decide_local_login(facts(true, Role::Primary, false, 1)),
            Enforcement::Exempt(Exemption::Primary)
        );
        assert_eq!(
            decide_local_login(facts(true, Role::SecurityAdmin, false, 1)),
            Enforcement::Exempt(Exemption::SecurityAdmin)
        );
        for role in [Role::Admin, Role::Technician, Role::ReadOnly] {
            let refused = decide_local_login(facts(true, role, false, 1));
            assert_eq!(refused, Enforcement::RequireIdp);
            assert!(!refused.allows());
            assert_eq!(
                decide_local_login(facts(true, role, true, 1)),
                Enforcement::Exempt(Exemption::Listed)
            );
            assert_eq!(
                decide_local_login(facts(true, role, false, 2)),
                Enforcement::Exempt(Exemption::SeveralPartners)
            );
        }
    }

    #[test]
    fn the_switch_needs_a_configured_provider_and_an_admin_login() {
        assert_eq!(
            can_require_idp(false, Some(1)),
            Err(SwitchRefusal::NotConfigured)
        );
        assert_eq!(
            can_require_idp(true, None),
            Err(SwitchRefusal::NoAdminIdpLogin)
        );
        assert_eq!(can_require_idp(true, Some(1)), Ok(()));
        assert!(proves_idp_setup(Role::Admin));
        assert!(!proves_idp_setup(Role::Technician));
        assert!(!proves_idp_setup(Role::ReadOnly));
    }

    fn any_role() -> impl Strategy<Value = Role> {
        prop::sample::select(Role::ALL.to_vec())
    }

    fn any_candidate() -> impl Strategy<Value = Candidate> {
        (
            1i64..1000,
            any::<bool>(),
            prop::collection::vec(any_role(), 0..4),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(user_id, active, roles, can_prove_account, member_of_partner)| Candidate {
                    user_id,
                    active,
                    roles,
                    can_prove_account,
                    member_of_partner,
                },
            )
    }

    proptest! {
        /// A privileged account or an unverified email is never linked without proof, and a
        /// privileged role is never provisioned.
        #[test]
        fn never_links_silently_what_must_be_proven(
            email in prop::option::of("[a-z]{0,5}"),
            verified in any::<bool>(),
            candidates in prop::collection::vec(any_candidate(), 0..3),
            enabled in any::<bool>(),
            default_role in any_role(),
        ) {
            let e = ProviderEmail { email, verified };
            let d = decide_link(&e, &candidates, Provisioning { enabled, default_role });
            match d {
                LinkDecision::Link(id) => {
                    prop_assert!(verified);
                    prop_assert_eq!(candidates.len(), 1);
                    prop_assert_eq!(candidates[0].user_id, id);
                    prop_assert!(candidates[0].active && !candidates[0].is_privileged());
                    prop_assert!(candidates[0].member_of_partner);
                }
                LinkDecision::ConfirmWithPassword(id) => {
                    prop_assert_eq!(candidates.len(), 1);
                    prop_assert_eq!(candidates[0].user_id, id);
                    prop_assert!(candidates[0].active && candidates[0].can_prove_account);
                    prop_assert!(candidates[0].member_of_partner);
                }
                LinkDecision::Provision(role) => {
                    prop_assert!(candidates.is_empty() && verified && enabled);
                    prop_assert!(!role.is_privileged());
                    prop_assert_eq!(role, default_role);
                }
                LinkDecision::Deny(_) => {}
            }
        }

        /// A refused password login is always of a single-partner, non-privileged, unlisted
        /// person whose partner requires the provider; Primary and Security Admin always pass.
        #[test]
        fn enforcement_never_locks_out_break_glass(
            requires in any::<bool>(),
            role in any_role(),
            listed in any::<bool>(),
            partners in 0usize..4,
        ) {
            let d = decide_local_login(facts(requires, role, listed, partners));
            if !d.allows() {
                prop_assert!(requires && !listed && partners <= 1 && !role.is_privileged());
            }
            if role.is_privileged() || listed || partners > 1 || !requires {
                prop_assert!(d.allows());
            }
        }
    }
}
