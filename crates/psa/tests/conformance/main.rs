//! One connector conformance suite, written once and run against every PSA's simulator over
//! real HTTP.
//!
//! Each PSA contributes a [`Target`] (in `targets.rs`): how to start its simulator and the
//! settings a user would type for it, good and bad. The checks in `checks.rs` know nothing of
//! any PSA: they learn the seed's facts from the simulator's `GET /_sim/fixtures` and read
//! tickets back through `GET /_sim/tickets/{id}`, both in PSA Bridge's terms.

mod checks;
mod targets;

/// Generates one test per check for one PSA, so a failure names the PSA and the check.
macro_rules! conformance {
    ($psa:ident) => {
        mod $psa {
            use crate::checks;
            use crate::targets;

            conformance!(@each $psa;
                connects,
                each_credential_mistake_is_named,
                lists_hold_the_ticket_fields,
                companies_page_to_the_end,
                company_search_finds_by_name,
                contact_by_email_found_missing_and_twice,
                the_primary_contact_of_a_company_is_named,
                create_carries_every_default,
                second_create_costs_one_call,
                notes_are_added_and_found_by_reference,
                closed_tickets_are_seen_closed,
                close_uses_the_close_status_and_leaves_a_note,
                a_create_lost_in_flight_is_found_not_doubled,
                a_reference_is_not_found_inside_a_longer_one,
                rate_limits_and_server_errors_are_classified,
                contracts_of_a_company_are_listed,
                a_ticket_carries_its_contract,
                an_unknown_or_foreign_contract_is_refused,
                a_closed_ticket_is_reopened_with_a_note,
                malformed_answers_are_typed_errors,
            );
        }
    };
    (@each $psa:ident; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() -> anyhow::Result<()> {
                let target = targets::$psa().await?;
                checks::$check(&target).await
            }
        )+
    };
}

conformance!(autotask);
conformance!(halopsa);
conformance!(kaseya_bms);
conformance!(connectwise);
