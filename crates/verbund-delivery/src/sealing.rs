//! Seals each booking's declared secrets for its site before the render (see
//! `verbund_render::sealed`): the plaintext Secret the renderer would expect
//! ([`verbund_render::secret_document`]), sealed for the site's age recipient with
//! `verbund_seal::seal`, or the document sealed before for the same plaintext and
//! recipient (kept in the store by digest), so that an unchanged booking keeps
//! byte-identical desired state: sealing is randomised, and a new seal each pass would
//! be a new commit each pass.
//!
//! A booking whose site cannot receive sealed secrets, or whose Secret cannot be built,
//! gets nothing sealed here; the renderer then refuses it with the reason.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use verbund_domain::booking::Booking;
use verbund_domain::directory::SiteSpec;
use verbund_domain::secrets::declares_secrets;
use verbund_render::{secret_document, SealedSecrets};
use verbund_store::{SealedDocument, Store};

use crate::records::Records;
use crate::Result;

impl Records {
    /// Seals the declared secrets of `bookings` (bookings of `spec`'s site) whose
    /// offering declares any, reusing what was sealed before for the same plaintext
    /// and recipient. What the renderer then reads ([`Records::sealed`]).
    pub(crate) async fn seal(
        &mut self,
        store: &Store,
        spec: &SiteSpec,
        bookings: &[Booking],
    ) -> Result<()> {
        let Some(recipient) = spec
            .age_recipient
            .as_deref()
            .filter(|_| spec.secret_delivery().is_ok())
        else {
            return Ok(());
        };
        let wanted: Vec<&Booking> = bookings
            .iter()
            .filter(|b| self.offering_schema(b).is_some_and(declares_secrets))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = wanted.iter().map(|b| b.id.clone()).collect();
        let mut values = store.booking_secrets(&ids).await?;
        let cached = store.sealed_documents(&ids).await?;
        let context: HashMap<&str, &Booking> =
            bookings.iter().map(|b| (b.id.as_str(), b)).collect();
        // The plaintext documents first (they borrow the records), then the sealing.
        let mut plain = Vec::new();
        for b in &wanted {
            let values = values.remove(&b.id).unwrap_or_default();
            let placed = self.placed(std::slice::from_ref(*b), &context)?;
            let Some(p) = placed.first() else { continue };
            match secret_document(p, &values) {
                Ok(document) => plain.push((b.id.clone(), values, document)),
                Err(e) => {
                    tracing::warn!(booking = %b.id, error = %e, "declared secrets not sealed");
                }
            }
        }
        for (booking, values, document) in plain {
            let pointers: BTreeSet<String> = values.into_keys().collect();
            let document = match document {
                None => None,
                Some(document) => {
                    let digest = verbund_seal::digest(&document, recipient);
                    let before = cached.get(&booking).filter(|c| {
                        c.site == spec.name && c.recipient == recipient && c.digest == digest
                    });
                    Some(match before {
                        Some(c) => c.document.clone(),
                        None => {
                            let sealed = match verbund_seal::seal(&document, recipient, Utc::now())
                            {
                                Ok(sealed) => sealed,
                                Err(e) => {
                                    tracing::warn!(booking = %booking, error = %e, "declared secrets not sealed");
                                    continue;
                                }
                            };
                            store
                                .store_sealed_document(
                                    &SealedDocument {
                                        booking: booking.clone(),
                                        site: spec.name.clone(),
                                        recipient: recipient.to_string(),
                                        digest,
                                        document: sealed.clone(),
                                    },
                                    Utc::now(),
                                )
                                .await?;
                            tracing::info!(booking = %booking, site = %spec.name, "declared secrets sealed");
                            sealed
                        }
                    })
                }
            };
            self.sealed.insert(
                booking,
                SealedSecrets {
                    pointers,
                    recipient: recipient.to_string(),
                    document,
                },
            );
        }
        Ok(())
    }
}
