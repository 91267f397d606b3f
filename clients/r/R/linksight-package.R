#' linksight: R client for the Linksight governance hub
#'
#' Linksight answers queries over the data of several healthcare
#' organisations while every record stays at the organisation's own data
#' station. You send a query to the governance hub; the data stewards of the
#' organisations whose data it touches approve it; the stations compute
#' their parts and combine them under secure multiparty computation, and
#' reveal only figures that pass disclosure control. This package talks to
#' the hub's REST API, whose OpenAPI description the hub serves at
#' `/openapi.json` and `/docs`. The hub and the stations enforce every rule:
#' the package checks no query and no disclosure rule itself.
#'
#' @section Functions:
#' * Connect: [lks_connect()], using the environment variables
#'   `LINKSIGHT_HUB_URL` and `LINKSIGHT_TOKEN` by default.
#' * Browse: [lks_collaborations()], [lks_collaboration()],
#'   [lks_datasets()], [lks_schema()].
#' * Query: [lks_query()], or step by step [lks_submit()], [lks_wait()],
#'   [lks_result()]; follow requests with [lks_request()] and
#'   [lks_requests()].
#' * Decide, as a data steward: [lks_approve()], [lks_reject()],
#'   [lks_revoke()].
#'
#' @section Conditions:
#' Every error has the class `linksight_error` and one of:
#' * `linksight_argument_error`: an argument is missing or invalid.
#' * `linksight_connection_error`: the hub could not be reached.
#' * `linksight_http_error`: the hub returned an error. The condition has
#'   the HTTP `status`, the hub's `code` and its whole `detail`, and the
#'   class `linksight_<code>`, such as `linksight_not_found`,
#'   `linksight_forbidden` or `linksight_invalid_query`. Its message is the
#'   hub's.
#' * `linksight_request_error`: a request was rejected, failed, was revoked
#'   or expired; the `request` field holds it.
#' * `linksight_timeout`: [lks_wait()] ran out of time; the request goes on.
#'
#' A result blocked by disclosure control raises a warning of class
#' `linksight_blocked`; [lks_wait()] reports progress as messages of class
#' `linksight_progress`.
#'
#' @keywords internal
"_PACKAGE"
