//! Sign-up: an account and, optionally, its first tenant, in one transaction.

use tenantry_core::{Origin, ResourceName, Slug};
use tenantry_identity::{Identity, NewUser, User};

use crate::{TenancyError, Tenant, tenants::create_tenant_in};

const SLUG_ATTEMPTS: u32 = 20;

/// Registers `new`; with `tenant_name`, also creates a tenant the user owns. Either both
/// exist afterwards or neither does.
pub async fn register(
    identity: &Identity,
    new: NewUser,
    tenant_name: Option<ResourceName>,
    origin: &Origin,
) -> Result<(User, Option<Tenant>), TenancyError> {
    // Hash before taking the write transaction: hashing takes tens of milliseconds.
    let hash = identity.hash_password(&new.password).await?;
    let base = tenant_name.as_ref().map(|n| Slug::from_name(n.as_str()));
    for attempt in 0..SLUG_ATTEMPTS {
        let mut tx = identity.db().begin_write().await?;
        let user = Identity::insert_user(&mut tx, &new, hash.clone(), false).await?;
        // Before the tenant: creating it switches this transaction to the tenant role (which
        // may write only that tenant's rows, not mail or the account's audit chain).
        Identity::record_registration(&mut tx, &user, origin).await?;
        identity.queue_verification(&mut tx, &user).await?;
        let tenant = match (&tenant_name, &base) {
            (Some(name), Some(base)) => {
                let slug = if attempt == 0 {
                    base.clone()
                } else {
                    base.with_suffix(attempt + 1)
                };
                match create_tenant_in(&mut tx, user.id, name, &slug, origin).await {
                    Ok(tenant) => Some(tenant),
                    Err(TenancyError::SlugTaken) => continue,
                    Err(e) => return Err(e),
                }
            }
            _ => None,
        };
        tx.commit().await?;
        identity.mailer().wake();
        tracing::info!(user_id = %user.id, tenant_id = ?tenant.as_ref().map(|t| t.id), "user registered");
        return Ok((user, tenant));
    }
    Err(TenancyError::SlugTaken)
}
