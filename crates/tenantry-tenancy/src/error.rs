use tenantry_core::{Permission, Problem};
use tenantry_db::DbError;
use tenantry_identity::IdentityError;

#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// Unknown, deleted, or belonging to a tenant the caller cannot see.
    #[error("not found")]
    NotFound,
    #[error("requires permission {0}")]
    Forbidden(Permission),
    /// Granting or changing a role beyond the caller's own permissions.
    #[error("cannot assign or change a role with more permissions than your own")]
    RoleTooPowerful,
    #[error("tenant is suspended")]
    Suspended,
    /// An administrator suspending a tenant that already is.
    #[error("tenant is already suspended")]
    AlreadySuspended,
    /// An administrator reactivating a tenant that is not suspended.
    #[error("tenant is not suspended")]
    NotSuspended,
    #[error("platform administrators only")]
    NotPlatformAdmin,
    #[error("a tenant needs at least one owner")]
    LastOwner,
    #[error("already a member")]
    AlreadyMember,
    #[error("unknown role {0:?}")]
    UnknownRole(String),
    #[error("no account with this e-mail address")]
    UnknownUser,
    #[error("slug is taken")]
    SlugTaken,
    #[error("a project with this name exists")]
    ProjectNameTaken,
    #[error("a role with this name exists")]
    RoleNameTaken,
    /// A custom role still named by rows of this table.
    #[error("the role is still assigned ({0})")]
    RoleInUse(&'static str),
    #[error("system roles cannot be changed")]
    SystemRoleImmutable,
    /// A `project_id` in a request body that names no project of the tenant.
    #[error("unknown project")]
    UnknownProject,
    /// Not a member of the tenant (for project assignments).
    #[error("not a member of this tenant")]
    NotAMember,
    /// Unknown, malformed, expired or revoked API key, or one whose creator left.
    #[error("invalid API key")]
    InvalidApiKey,
    /// A request field that fails a rule of the domain.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: &'static str,
    },
    /// An invitation token that is unknown, used, revoked or expired.
    #[error("the invitation link is invalid, used or expired")]
    InvitationInvalid,
    /// Deleting a project that documents still belong to.
    #[error("the project still has documents")]
    ProjectHasDocuments,
    /// Accepting an invitation whose address the tenant's `allowed_email_domains` no longer
    /// admits.
    #[error("the tenant does not admit this e-mail domain")]
    DomainNotAllowed,
    /// Accepting an invitation addressed to another e-mail address.
    #[error("the invitation is for another e-mail address")]
    EmailMismatch,
    /// Another invitation of the same address was created concurrently.
    #[error("another invitation for this address was created at the same time")]
    InvitationConflict,
    /// Inviting (or adding by e-mail) from an account whose own address is not verified.
    #[error("verify your e-mail address before inviting")]
    SenderNotVerified,
    /// Accepting an invitation with an account whose address is not verified yet.
    #[error("verify your e-mail address before accepting")]
    InviteeNotVerified,
    /// A guest account doing what needs a registered one (creating a tenant).
    #[error("guest accounts cannot do this")]
    GuestNotAllowed,
    /// The sender's or the tenant's hourly invitation limit is reached.
    #[error("invitation limit reached; retry in {retry_after_secs} s")]
    InvitationRateLimited { retry_after_secs: u64 },
    /// The tenant has `tenancy.max_pending_invitations` pending invitations already.
    #[error("the tenant has {limit} pending invitations")]
    TooManyPendingInvitations { limit: u32 },
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<TenancyError> for Problem {
    fn from(error: TenancyError) -> Self {
        match error {
            TenancyError::NotFound => Problem::not_found(),
            TenancyError::Forbidden(permission) => {
                Problem::forbidden().with_detail(format!("requires permission {permission}"))
            }
            TenancyError::RoleTooPowerful => Problem::forbidden().with_detail(
                "you cannot assign, change or remove a role with permissions you do not hold",
            ),
            TenancyError::NotPlatformAdmin => Problem::platform_admin_required()
                .with_detail("this endpoint is for platform administrators"),
            TenancyError::Suspended => {
                Problem::tenant_suspended().with_detail("this tenant is suspended")
            }
            TenancyError::AlreadySuspended => {
                Problem::conflict().with_detail("the tenant is already suspended")
            }
            TenancyError::NotSuspended => {
                Problem::conflict().with_detail("the tenant is not suspended")
            }
            TenancyError::LastOwner => {
                Problem::last_owner().with_detail("promote another member to owner first")
            }
            TenancyError::AlreadyMember => {
                Problem::already_exists().with_detail("the user is already a member of this tenant")
            }
            TenancyError::UnknownRole(role) => Problem::validation_failed()
                .with_detail(format!("unknown role {role:?}"))
                .with_field("role", "is not a role of this tenant"),
            TenancyError::UnknownUser => Problem::validation_failed()
                .with_detail("no account with this e-mail address or id")
                .with_field("email", "has no account; invite them instead"),
            TenancyError::SlugTaken => Problem::already_exists()
                .with_detail("slug is already taken")
                .with_field("slug", "is already taken"),
            TenancyError::ProjectNameTaken => Problem::already_exists()
                .with_detail("a project with this name already exists")
                .with_field("name", "is already taken"),
            TenancyError::RoleNameTaken => Problem::already_exists()
                .with_detail("a role with this name already exists")
                .with_field("name", "is already taken"),
            TenancyError::RoleInUse(table) => Problem::role_in_use().with_detail(match table {
                "memberships" => "members hold this role; change their role first",
                "project_members" => "project assignments use this role; change them first",
                "api_keys" => "API keys use this role; revoke them first",
                _ => "pending invitations use this role; revoke them first",
            }),
            TenancyError::SystemRoleImmutable => {
                Problem::forbidden().with_detail("system roles cannot be changed or deleted")
            }
            TenancyError::UnknownProject => Problem::validation_failed()
                .with_detail("no such project in this tenant")
                .with_field("project_id", "is not a project of this tenant"),
            TenancyError::NotAMember => {
                Problem::not_found().with_detail("the user is not a member of this tenant")
            }
            TenancyError::InvalidApiKey => {
                Problem::invalid_token().with_detail("the API key is unknown, expired or revoked")
            }
            TenancyError::Invalid { field, message } => Problem::validation_failed()
                .with_detail(format!("{field} {message}"))
                .with_field(field, message),
            TenancyError::InvitationInvalid => Problem::link_invalid()
                .with_detail("the invitation is unknown, already used, revoked or expired"),
            TenancyError::ProjectHasDocuments => Problem::conflict()
                .with_detail("the project still has documents; delete them first"),
            TenancyError::DomainNotAllowed => Problem::forbidden()
                .with_detail("the tenant now admits only e-mail addresses of its allowed domains"),
            TenancyError::EmailMismatch => Problem::email_mismatch()
                .with_detail("sign in (or register) with the invited e-mail address to accept"),
            TenancyError::InvitationConflict => Problem::conflict().with_detail(
                "another invitation for this address was sent at the same time; retry",
            ),
            TenancyError::SenderNotVerified => Problem::email_not_verified().with_detail(
                "verify your own e-mail address before inviting anyone",
            ),
            TenancyError::InviteeNotVerified => Problem::email_not_verified().with_detail(
                "verify your e-mail address first (POST /api/v1/users/me/verification-email), \
                 then accept again: the invitation stays pending",
            ),
            TenancyError::GuestNotAllowed => Problem::guest_not_allowed()
                .with_detail("register an account to create or join tenants"),
            TenancyError::InvitationRateLimited { retry_after_secs } => Problem::rate_limited()
                .with_detail("too many invitations were sent in the last hour")
                .with_retry_after(retry_after_secs),
            TenancyError::TooManyPendingInvitations { limit } => {
                Problem::too_many_pending_invitations().with_detail(format!(
                    "the tenant has {limit} pending invitations; revoke some or wait until they are accepted or expire"
                ))
            }
            TenancyError::Identity(e) => e.into(),
            TenancyError::Db(e) => e.into(),
            TenancyError::Internal(e) => Problem::internal_error(&e),
        }
    }
}
