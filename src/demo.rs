//! `serve --demo`: a demo user (a fresh password at every start) and a public client, and a
//! walkthrough to paste. Called by `server` once the app is built.

use crate::app::App;
use crate::domain::model::{AuthMethod, Client};
use crate::grants::accounts::{self, NewUser};
use crate::paths;
use crate::util::{b64url, now_ms, random_token, sha256};

/// `serve --demo`: a demo user and public client, and a walkthrough to paste.
pub async fn setup(app: &App) -> anyhow::Result<()> {
    let store = &app.store;
    let issuer = &app.cfg.issuer;
    let password = format!("demo-{}", &random_token()[..12]);
    // A fresh password at every start (the demo user's earlier sessions and grants end).
    match store.find_user_by_username("demo").await? {
        None => {
            let user = NewUser {
                username: "demo",
                password: &password,
                email: Some("demo@example.com".into()),
                name: Some("Demo User".into()),
            };
            accounts::create_user(store, user).await?;
        }
        Some(u) => accounts::set_password(store, &u.id, &password).await?,
    }
    let password_note = password;
    let redirect = format!("{issuer}/demo/callback");
    if store.get_client("demo-app").await?.is_none() {
        store
            .insert_client(Client {
                name: "Demo App".into(),
                auth_method: AuthMethod::None,
                redirect_uris: vec![redirect.clone()],
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                scope: "openid profile email offline_access".into(),
                post_logout_redirect_uris: vec![format!("{issuer}{}", paths::LOGIN)],
                ..Client::blank("demo-app".into(), now_ms())
            })
            .await?;
    }
    let verifier = random_token();
    let challenge = b64url(&sha256(verifier.as_bytes()));
    let authorize = format!(
        "{issuer}{}?response_type=code&client_id=demo-app&redirect_uri={}&scope=openid%20profile%20offline_access&state=demo&code_challenge={challenge}&code_challenge_method=S256",
        paths::AUTHORIZE,
        percent_encoding::utf8_percent_encode(&redirect, percent_encoding::NON_ALPHANUMERIC)
    );
    println!(
        r#"
Demo ready.
  user:      demo
  password:  {password_note}
  client_id: demo-app (public, PKCE S256)

1. Open in a browser, sign in, allow:
   {authorize}
2. Copy the code from the page, then:
   CODE=<paste the code>
   curl -s {issuer}/oauth/token -d grant_type=authorization_code -d client_id=demo-app \
     -d code=$CODE -d redirect_uri={redirect} -d code_verifier={verifier}
3. Refresh (rotation: the old refresh token stops working):
   RT=<refresh_token from step 2>
   curl -s {issuer}/oauth/refresh -H 'Content-Type: application/json' \
     -d "{{\"refresh_token\":\"$RT\",\"client_id\":\"demo-app\"}}"
"#
    );
    Ok(())
}
