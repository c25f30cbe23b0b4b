//! The catalog of event types: every `type` a service may emit, with the schema of its `data`.
//!
//! `data` is the resource as its GET returns it (the OpenAPI component named by
//! [`EventType::data_schema`]); events of an update add `changes`, the names of the fields the
//! change set ([`EventType::is_update`]). `docs/events.md` is rendered from this list and a test
//! keeps it and the OpenAPI document in step with it.

/// One kind of domain event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    TenantCreated,
    TenantUpdated,
    TenantSuspended,
    TenantReactivated,
    TenantDeleted,
    MemberAdded,
    MemberRoleChanged,
    MemberRemoved,
    InvitationCreated,
    InvitationAccepted,
    InvitationRevoked,
    RoleCreated,
    RoleUpdated,
    RoleDeleted,
    ProjectCreated,
    ProjectUpdated,
    ProjectDeleted,
    ProjectMemberAssigned,
    ProjectMemberRemoved,
    ApiKeyCreated,
    ApiKeyRevoked,
    DocumentUploaded,
    DocumentUpdated,
    DocumentDeleted,
    FileDeleted,
    UserRegistered,
    UserCreated,
    UserUpdated,
    UserEmailVerified,
    UserPasswordChanged,
    UserMfaEnabled,
    UserMfaDisabled,
    UserDisabled,
    UserEnabled,
    UserPlatformAdminGranted,
}

/// Where an event is stored and whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventScope {
    /// A tenant's change: `domain_events`, source `/tenants/{tenant_id}`.
    Tenant,
    /// An account's change, in no tenant: `platform_events`, source `/users/{user_id}`.
    Account,
}

impl EventType {
    /// Every type, in the order the docs list them.
    pub const ALL: [Self; 35] = [
        Self::TenantCreated,
        Self::TenantUpdated,
        Self::TenantSuspended,
        Self::TenantReactivated,
        Self::TenantDeleted,
        Self::MemberAdded,
        Self::MemberRoleChanged,
        Self::MemberRemoved,
        Self::InvitationCreated,
        Self::InvitationAccepted,
        Self::InvitationRevoked,
        Self::RoleCreated,
        Self::RoleUpdated,
        Self::RoleDeleted,
        Self::ProjectCreated,
        Self::ProjectUpdated,
        Self::ProjectDeleted,
        Self::ProjectMemberAssigned,
        Self::ProjectMemberRemoved,
        Self::ApiKeyCreated,
        Self::ApiKeyRevoked,
        Self::DocumentUploaded,
        Self::DocumentUpdated,
        Self::DocumentDeleted,
        Self::FileDeleted,
        Self::UserRegistered,
        Self::UserCreated,
        Self::UserUpdated,
        Self::UserEmailVerified,
        Self::UserPasswordChanged,
        Self::UserMfaEnabled,
        Self::UserMfaDisabled,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserPlatformAdminGranted,
    ];

    /// The CloudEvents `type`.
    pub const fn as_str(self) -> &'static str {
        self.describe().0
    }

    /// The OpenAPI component (`#/components/schemas/…`) `data` conforms to.
    pub const fn data_schema(self) -> &'static str {
        self.describe().1
    }

    /// The subject, relative to the source `/tenants/{tenant_id}`.
    pub const fn subject_pattern(self) -> &'static str {
        self.describe().2
    }

    /// When it is emitted.
    pub const fn description(self) -> &'static str {
        self.describe().3
    }

    /// Whether a tenant or an account changed.
    pub const fn scope(self) -> EventScope {
        match self {
            Self::UserRegistered
            | Self::UserCreated
            | Self::UserPlatformAdminGranted
            | Self::UserUpdated
            | Self::UserEmailVerified
            | Self::UserPasswordChanged
            | Self::UserMfaEnabled
            | Self::UserMfaDisabled
            | Self::UserDisabled
            | Self::UserEnabled => EventScope::Account,
            _ => EventScope::Tenant,
        }
    }

    /// Whether `data` carries `changes`: the names of the fields the update set.
    pub const fn is_update(self) -> bool {
        matches!(
            self,
            Self::TenantUpdated
                | Self::RoleUpdated
                | Self::ProjectUpdated
                | Self::DocumentUpdated
                | Self::UserUpdated
        )
    }

    /// (type, data schema, subject, description) — one table so a new type is one line.
    const fn describe(self) -> (&'static str, &'static str, &'static str, &'static str) {
        const TENANT: &str = "tenants/{tenant_id}";
        const MEMBER: &str = "members/{user_id}";
        const INVITATION: &str = "invitations/{invitation_id}";
        const ROLE: &str = "roles/{role_id}";
        const PROJECT: &str = "projects/{project_id}";
        const PROJECT_MEMBER: &str = "projects/{project_id}/members/{user_id}";
        const API_KEY: &str = "api-keys/{api_key_id}";
        const DOCUMENT: &str = "documents/{document_id}";
        const FILE: &str = "files/{file_id}";
        const USER: &str = "users/{user_id}";
        match self {
            Self::TenantCreated => (
                "tenant.created",
                "Tenant",
                TENANT,
                "A user created the tenant (they are its owner).",
            ),
            Self::TenantUpdated => (
                "tenant.updated",
                "Tenant",
                TENANT,
                "Its name or settings changed.",
            ),
            Self::TenantSuspended => (
                "tenant.suspended",
                "Tenant",
                TENANT,
                "A platform administrator suspended it.",
            ),
            Self::TenantReactivated => (
                "tenant.reactivated",
                "Tenant",
                TENANT,
                "A platform administrator reactivated it.",
            ),
            Self::TenantDeleted => (
                "tenant.deleted",
                "Tenant",
                TENANT,
                "Its owner deleted it (soft delete; `data` as it was before).",
            ),
            Self::MemberAdded => (
                "member.added",
                "Member",
                MEMBER,
                "A user joined by accepting an invitation.",
            ),
            Self::MemberRoleChanged => (
                "member.role_changed",
                "Member",
                MEMBER,
                "A member's tenant role changed (`data` with the new role).",
            ),
            Self::MemberRemoved => (
                "member.removed",
                "Member",
                MEMBER,
                "A member was removed or left (`data` as it was before).",
            ),
            Self::InvitationCreated => (
                "invitation.created",
                "Invitation",
                INVITATION,
                "An invitation was sent.",
            ),
            Self::InvitationAccepted => (
                "invitation.accepted",
                "Invitation",
                INVITATION,
                "The invitee accepted (followed by `member.added`).",
            ),
            Self::InvitationRevoked => (
                "invitation.revoked",
                "Invitation",
                INVITATION,
                "An invitation was revoked, or replaced by a new one to the same address.",
            ),
            Self::RoleCreated => (
                "role.created",
                "RoleView",
                ROLE,
                "A custom role was created.",
            ),
            Self::RoleUpdated => (
                "role.updated",
                "RoleView",
                ROLE,
                "A custom role's name, description or permissions changed.",
            ),
            Self::RoleDeleted => (
                "role.deleted",
                "RoleView",
                ROLE,
                "A custom role was deleted (`data` as it was before).",
            ),
            Self::ProjectCreated => (
                "project.created",
                "Project",
                PROJECT,
                "A project was created.",
            ),
            Self::ProjectUpdated => (
                "project.updated",
                "Project",
                PROJECT,
                "A project's name, description or settings changed.",
            ),
            Self::ProjectDeleted => (
                "project.deleted",
                "Project",
                PROJECT,
                "A project was deleted (`data` as it was before).",
            ),
            Self::ProjectMemberAssigned => (
                "project_member.assigned",
                "ProjectMember",
                PROJECT_MEMBER,
                "A member was given (or changed) a role in a project.",
            ),
            Self::ProjectMemberRemoved => (
                "project_member.removed",
                "ProjectMember",
                PROJECT_MEMBER,
                "A member's project role was removed (`data` as it was before).",
            ),
            Self::ApiKeyCreated => (
                "api_key.created",
                "ApiKey",
                API_KEY,
                "An API key was created (never with its secret).",
            ),
            Self::ApiKeyRevoked => (
                "api_key.revoked",
                "ApiKey",
                API_KEY,
                "An API key was revoked.",
            ),
            Self::DocumentUploaded => (
                "document.uploaded",
                "DocumentUploaded",
                DOCUMENT,
                "A document was uploaded (`deduplicated` when its content was already stored).",
            ),
            Self::DocumentUpdated => (
                "document.updated",
                "Document",
                DOCUMENT,
                "A document's name or media type changed.",
            ),
            Self::DocumentDeleted => (
                "document.deleted",
                "DocumentDeleted",
                DOCUMENT,
                "A document was deleted.",
            ),
            Self::FileDeleted => (
                "file.deleted",
                "FileDetail",
                FILE,
                "A stored file no document references was deleted (`data` as it was before).",
            ),
            Self::UserRegistered => (
                "user.registered",
                "UserView",
                USER,
                "Someone signed up (with or without a first tenant).",
            ),
            Self::UserCreated => (
                "user.created",
                "UserView",
                USER,
                "An account was created without a sign-up: a guest, a first sign-in through an \
                 external issuer, or a platform administrator from the command line.",
            ),
            Self::UserUpdated => (
                "user.updated",
                "UserView",
                USER,
                "The user changed their profile or preferences.",
            ),
            Self::UserEmailVerified => (
                "user.email_verified",
                "UserView",
                USER,
                "The user followed their verification link.",
            ),
            Self::UserPasswordChanged => (
                "user.password_changed",
                "UserView",
                USER,
                "The password was changed, or reset through a mailed link.",
            ),
            Self::UserMfaEnabled => (
                "user.mfa_enabled",
                "UserView",
                USER,
                "The user confirmed a TOTP enrolment.",
            ),
            Self::UserMfaDisabled => (
                "user.mfa_disabled",
                "UserView",
                USER,
                "The user turned TOTP off.",
            ),
            Self::UserDisabled => (
                "user.disabled",
                "UserView",
                USER,
                "A platform administrator disabled the account.",
            ),
            Self::UserEnabled => (
                "user.enabled",
                "UserView",
                USER,
                "A platform administrator enabled the account again.",
            ),
            Self::UserPlatformAdminGranted => (
                "user.platform_admin_granted",
                "UserView",
                USER,
                "The command line made an existing account a platform administrator.",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_unique_and_named_resource_dot_verb() {
        let mut seen = std::collections::HashSet::new();
        for t in EventType::ALL {
            assert!(seen.insert(t.as_str()), "{} twice", t.as_str());
            let (resource, verb) = t.as_str().split_once('.').unwrap();
            assert!(!resource.is_empty() && !verb.is_empty(), "{}", t.as_str());
            assert_eq!(t.is_update(), verb == "updated", "{}", t.as_str());
        }
    }
}
