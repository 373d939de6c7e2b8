//! The service navigation: the pages the signed-in role may use, and only
//! those. Each role's pages are listed once here; the handlers check the
//! same duty ([`crate::console::roles::duty`]) before doing anything, so a
//! link left out is never the only guard.

use maud::{Markup, html};

use crate::console::roles::{Duty, duty};

/// The pages of a duty, as (path, link text).
pub fn links(duty: Duty) -> &'static [(&'static str, &'static str)] {
    match duty {
        Duty::CaseWork => &[("/search", "Search"), ("/subscriptions", "Subscriptions")],
        Duty::Audit => &[
            ("/audit/search", "Audit log"),
            ("/audit/subject", "Subject access"),
            ("/audit/break-glass", "Break glass reviews"),
            ("/audit/verify", "Log verification"),
            ("/audit/export", "Export"),
        ],
        Duty::Operate => &[("/operator", "Agent status")],
    }
}

/// The navigation list for `role`; `current` is the path of the page shown.
pub fn menu(role: &str, current: Option<&str>) -> Markup {
    html! {
        ul class="govuk-service-navigation__list" {
            @for (path, text) in links(duty(role)) {
                @let here = current == Some(*path);
                li class={ "govuk-service-navigation__item" @if here { " govuk-service-navigation__item--active" } } {
                    a class="govuk-service-navigation__link" href=(path) aria-current=[here.then_some("page")] {
                        @if here { strong class="govuk-service-navigation__active-fallback" { (text) } } @else { (text) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_sees_only_its_own_pages() {
        let case = menu("social_worker", Some("/search")).into_string();
        assert!(case.contains("href=\"/search\""), "{case}");
        assert!(case.contains("aria-current=\"page\""), "{case}");
        assert!(case.contains("href=\"/subscriptions\""), "{case}");
        assert!(!case.contains("/audit"), "{case}");
        let audit = menu("federation_auditor", None).into_string();
        for path in [
            "/audit/search",
            "/audit/subject",
            "/audit/break-glass",
            "/audit/verify",
            "/audit/export",
        ] {
            assert!(audit.contains(path), "{path} missing: {audit}");
        }
        assert!(
            !audit.contains("\"/search\"")
                && !audit.contains("/operator")
                && !audit.contains("/subscriptions"),
            "{audit}"
        );
        let op = menu("operator", None).into_string();
        assert!(
            op.contains("/operator") && !op.contains("/audit") && !op.contains("\"/search\""),
            "{op}"
        );
    }
}
