//! `kith.v1.SubscriptionService`: subscribe, unsubscribe, list (issue #17).
//! Each adapter converts the request, calls the domain
//! ([`crate::subscriptions`]) and converts the answer back.

use std::sync::Arc;

use kith_core::wire::{acting_user_from_wire, acting_user_to_wire, subscribe_from_wire};
use kith_proto::v1 as pb;
use pb::subscription_service_server::SubscriptionService;
use tonic::{Request, Response, Status};

use super::{caller, to_status};
use crate::error::HubError;
use crate::hub::Hub;
use crate::model::Subscription;

pub struct SubscriptionServiceImpl {
    pub hub: Arc<Hub>,
}

/// A stored subscription on the wire.
pub fn subscription_to_wire(s: Subscription) -> pb::Subscription {
    pb::Subscription {
        subscription_id: s.subscription_id,
        subscriber: s.subscriber,
        nhs_number: s.nhs_number,
        relationship_types: s
            .relationship_types
            .iter()
            .map(|t| t.to_wire() as i32)
            .collect(),
        categories: s.categories,
        purpose: s.purpose.to_wire() as i32,
        created_by: Some(acting_user_to_wire(&s.created_by)),
        created_at: s.created_at,
        ends_on: s.ends_on.to_string(),
        ended_at: s.ended_at.unwrap_or_default(),
        end_reason: s.end_reason.unwrap_or_default(),
    }
}

/// As `records::to_completion`: a store write runs to its end even if the
/// caller hangs up.
async fn to_completion<T: Send + 'static>(
    write: impl std::future::Future<Output = Result<T, HubError>> + Send + 'static,
) -> Result<T, Status> {
    tokio::spawn(write)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "a write task failed");
            Status::internal("internal error")
        })?
        .map_err(to_status)
}

#[tonic::async_trait]
impl SubscriptionService for SubscriptionServiceImpl {
    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<pb::SubscribeResponse>, Status> {
        let caller = caller(&self.hub, &request).await?;
        let request = subscribe_from_wire(request.into_inner());
        let hub = self.hub.clone();
        let done = to_completion(async move { hub.subscribe(&caller, request).await }).await?;
        Ok(Response::new(pb::SubscribeResponse {
            subscription: Some(subscription_to_wire(done.subscription)),
            audit_index: done.audit_index,
        }))
    }

    async fn unsubscribe(
        &self,
        request: Request<pb::UnsubscribeRequest>,
    ) -> Result<Response<pb::UnsubscribeResponse>, Status> {
        let caller = caller(&self.hub, &request).await?;
        let r = request.into_inner();
        let user = acting_user_from_wire(r.acting_user);
        let hub = self.hub.clone();
        let audit_index =
            to_completion(async move { hub.unsubscribe(&caller, user, &r.subscription_id).await })
                .await?;
        Ok(Response::new(pb::UnsubscribeResponse { audit_index }))
    }

    async fn list_subscriptions(
        &self,
        request: Request<pb::ListSubscriptionsRequest>,
    ) -> Result<Response<pb::ListSubscriptionsResponse>, Status> {
        let caller = caller(&self.hub, &request).await?;
        let include_ended = request.into_inner().include_ended;
        let found = self
            .hub
            .list_subscriptions(&caller, include_ended)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListSubscriptionsResponse {
            subscriptions: found.into_iter().map(subscription_to_wire).collect(),
        }))
    }
}
