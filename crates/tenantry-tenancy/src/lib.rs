//! Tenancy: tenants, memberships, roles, projects — and the authorization layer that issues
//! [`tenantry_db::TenantScope`]s.

pub mod admin;
mod answers;
mod api_keys;
pub mod authz;
pub mod config;
mod error;
pub mod http;
mod invitations;
mod members;
pub mod migrations;
mod model;
mod project_members;
mod projects;
mod purge;
mod roles;
pub mod settings;
mod signup;
mod tenants;

pub use answers::{member_user_ids, periodic_tasks, project_in_tenant};
pub use api_keys::{
    ApiKey, CreatedApiKey, KeyGrant, NewApiKey, create_api_key, get_api_key, list_api_keys,
    revoke_api_key,
};
pub use config::TenancyConfig;
pub use error::TenancyError;
pub use invitations::{
    INVITATION_TTL, Invitation, InvitationPreview, NewInvitation, accept_invitation,
    create_invitation, list_invitations, preview_invitation, revoke_invitation,
};
pub use members::{
    MemberRef, add_member, change_member_role, get_member, list_members, remove_member,
};
pub use model::{
    Member, PermissionView, Project, ResolvedRole, RoleView, Tenant, TenantMembership, TenantStatus,
};
pub use project_members::{
    ProjectMember, assign_project_role, list_project_members, remove_project_role,
};
pub use projects::{
    NewProject, ProjectChange, ProjectFilter, create_project, delete_project, get_project,
    list_projects, update_project,
};
pub use purge::{Purged, purge_deleted_tenants};
pub use roles::{NewRole, RoleChange, create_role, delete_role, get_role, list_roles, update_role};
pub use settings::{TenantSettings, TenantSettingsPatch, get_settings, update_settings};
pub use signup::register;
pub use tenants::{
    NewTenant, TenantChange, create_tenant, delete_tenant, get_tenant, list_my_tenants,
    update_tenant,
};
