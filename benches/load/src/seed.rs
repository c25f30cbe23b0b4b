//! Seeding: tenants with their owners, members who joined through the consent flow (verified
//! addresses, invitations accepted), and projects — all through the public API.

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use serde_json::json;
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{Args, Client, PASSWORD, mail};

pub struct Tenant {
    pub id: String,
    pub owner_token: String,
    pub member_tokens: Vec<String>,
    pub member_emails: Vec<String>,
    pub projects: Vec<String>,
}

pub async fn run_all<T: Send + 'static>(
    limit: usize,
    jobs: Vec<impl std::future::Future<Output = anyhow::Result<T>> + Send + 'static>,
) -> anyhow::Result<Vec<T>> {
    let permits = Arc::new(Semaphore::new(limit));
    let mut set = JoinSet::new();
    for (i, job) in jobs.into_iter().enumerate() {
        let permits = permits.clone();
        set.spawn(async move {
            let _p = permits.acquire_owned().await;
            job.await.map(|v| (i, v))
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r??);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

pub async fn seed(client: Arc<Client>, args: &Args, run: &str) -> anyhow::Result<Vec<Tenant>> {
    let started = Instant::now();
    // Owners, each registering with a first tenant.
    let owners = run_all(8, (0..args.tenants).map(|t| {
        let client = client.clone();
        let email = format!("owner{t}-{run}@bench.example.com");
        let tenant_name = format!("Bench {t} {run}");
        async move {
            let reg = client
                .post("/api/v1/auth/register", None, json!({"email": email, "password": PASSWORD,
                    "first_name": "Owner", "last_name": format!("{t}"), "tenant_name": tenant_name}))
                .await?;
            let login = client.login(&email).await?;
            Ok((reg["tenant"]["id"].as_str().context("tenant id")?.to_owned(),
                login["access_token"].as_str().context("token")?.to_owned(), email))
        }
    }).collect()).await?;
    // Members: users 1..users of each tenant, registered, then verified and invited.
    let users: Vec<(usize, String)> = (0..args.tenants)
        .flat_map(|t| {
            (1..args.users).map(move |u| (t, format!("user{t}-{u}-{run}@bench.example.com")))
        })
        .collect();
    run_all(
        8,
        users
            .iter()
            .map(|(t, email)| {
                let (client, email, t) = (client.clone(), email.clone(), *t);
                async move {
                    client
                        .post(
                            "/api/v1/auth/register",
                            None,
                            json!({"email": email, "password": PASSWORD,
                "first_name": "User", "last_name": format!("{t}")}),
                        )
                        .await?;
                    Ok(())
                }
            })
            .collect(),
    )
    .await?;
    // Inviting needs a verified sender and accepting a verified invitee, as for anyone.
    let mut mailbox = mail::Mailbox::new(&args.mail_dir);
    let everyone: Vec<String> = owners
        .iter()
        .map(|(_, _, email)| email.clone())
        .chain(users.iter().map(|(_, email)| email.clone()))
        .collect();
    let verify = mailbox.tokens(mail::VERIFY, &everyone).await?;
    run_all(
        8,
        verify
            .into_values()
            .map(|token| {
                let client = client.clone();
                async move {
                    client
                        .post("/api/v1/auth/verify-email", None, json!({"token": token}))
                        .await
                        .map(drop)
                }
            })
            .collect(),
    )
    .await?;
    run_all(
        8,
        users
            .iter()
            .map(|(t, email)| {
                let (client, email) = (client.clone(), email.clone());
                let (tenant, owner, _) = owners[*t].clone();
                async move {
                    client
                        .post(
                            &format!("/api/v1/tenants/{tenant}/members"),
                            Some(&owner),
                            json!({"email": email, "role": "member"}),
                        )
                        .await
                        .map(drop)
                }
            })
            .collect(),
    )
    .await?;
    let user_emails: Vec<String> = users.iter().map(|(_, email)| email.clone()).collect();
    let invitations = mailbox.tokens(mail::ACCEPT, &user_emails).await?;
    let members = run_all(
        8,
        users
            .into_iter()
            .map(|(t, email)| {
                let client = client.clone();
                let invitation = invitations.get(&email).cloned().unwrap_or_default();
                async move {
                    let login = client.login(&email).await?;
                    let token = login["access_token"].as_str().context("token")?.to_owned();
                    client
                        .post(
                            &format!("/api/v1/invitations/{invitation}/accept"),
                            Some(&token),
                            json!({}),
                        )
                        .await?;
                    Ok((t, token, email))
                }
            })
            .collect(),
    )
    .await?;
    let owners: Vec<(String, String)> = owners
        .into_iter()
        .map(|(id, token, _)| (id, token))
        .collect();
    println!(
        "  seeded {} users in {} tenants in {:.1}s",
        args.tenants * args.users,
        args.tenants,
        started.elapsed().as_secs_f64()
    );
    let mut tenants: Vec<Tenant> = owners
        .into_iter()
        .map(|(id, owner_token)| Tenant {
            id,
            owner_token,
            member_tokens: Vec::new(),
            member_emails: Vec::new(),
            projects: Vec::new(),
        })
        .collect();
    for (t, token, email) in members {
        tenants[t].member_tokens.push(token);
        tenants[t].member_emails.push(email);
    }
    // Projects, spread evenly.
    let started = Instant::now();
    let per_tenant = args.projects / args.tenants.max(1);
    let jobs: Vec<_> = tenants.iter().enumerate().flat_map(|(t, tenant)| {
        let client = client.clone();
        let (id, token) = (tenant.id.clone(), tenant.owner_token.clone());
        (0..per_tenant).map(move |p| {
            let (client, id, token) = (client.clone(), id.clone(), token.clone());
            async move {
                let body = client.post(&format!("/api/v1/tenants/{id}/projects"), Some(&token),
                    json!({"name": format!("project {p}"), "description": "seeded by tenantry-bench"})).await?;
                Ok((t, body["id"].as_str().context("project id")?.to_owned()))
            }
        })
    }).collect();
    let total = jobs.len();
    for (t, project) in run_all(64, jobs).await? {
        tenants[t].projects.push(project);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "  seeded {total} projects in {secs:.1}s ({:.0} creates/s through the API)",
        total as f64 / secs
    );
    Ok(tenants)
}
