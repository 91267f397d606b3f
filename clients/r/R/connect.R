#' Connect to a Linksight hub
#'
#' Checks that the hub responds and that it accepts the token, and returns a
#' connection for the other `lks_` functions. The token is kept in the
#' connection but never printed.
#'
#' @param url The hub's base URL, such as `"http://127.0.0.1:8700"`. Defaults
#'   to the environment variable `LINKSIGHT_HUB_URL`.
#' @param token Your API token, which the hub's admin gave you. Defaults to
#'   the environment variable `LINKSIGHT_TOKEN`, which keeps it out of
#'   scripts and their history.
#' @param timeout Seconds to wait for each reply of the hub.
#' @param result_key The file of your result key, the X25519 private key
#'   that opens the results the stations seal to you; see
#'   [lks_result_key_path()]. It is created (mode 0600) and its public key
#'   registered at the hub when you first submit a query.
#' @param ca_certificate For a hub served over HTTPS with a certificate from
#'   the collaboration's CA: that CA's certificate (PEM file). Defaults to
#'   the environment variable `LINKSIGHT_CA_CERT`; empty means the system's
#'   trusted CAs.
#' @return A `linksight_connection`: a list with the `url`, the hub's
#'   `version`, and your `user` name, `organisation` and `roles`.
#' @examples
#' \dontrun{
#' Sys.setenv(LINKSIGHT_HUB_URL = "http://127.0.0.1:8700")
#' Sys.setenv(LINKSIGHT_TOKEN = "...")
#' conn <- lks_connect()
#' conn
#' }
#' @export
lks_connect <- function(url = Sys.getenv("LINKSIGHT_HUB_URL"),
                        token = Sys.getenv("LINKSIGHT_TOKEN"),
                        timeout = 30,
                        result_key = lks_result_key_path(),
                        ca_certificate = Sys.getenv("LINKSIGHT_CA_CERT")) {
  if (!is.character(url) || length(url) != 1L || is.na(url) || !nzchar(url)) {
    argument_error(
      "no hub URL: pass `url`, such as lks_connect(\"http://127.0.0.1:8700\"), or set the environment variable LINKSIGHT_HUB_URL"
    )
  }
  if (!grepl("^https?://", url)) {
    argument_error(sprintf(
      "invalid hub URL %s: it must start with http:// or https://, such as \"http://127.0.0.1:8700\"",
      deparse(url)
    ))
  }
  if (!is.character(token) || length(token) != 1L || is.na(token) ||
      !nzchar(token)) {
    argument_error(
      "no API token: pass `token` or set the environment variable LINKSIGHT_TOKEN; the hub's admin issues tokens"
    )
  }
  check_positive(timeout, "timeout")
  check_string(result_key, "result_key")
  if (nzchar(ca_certificate) && !file.exists(ca_certificate)) {
    argument_error(sprintf(
      "the hub's CA certificate %s does not exist; name the PEM file of the CA that signed the hub's certificate (LINKSIGHT_CA_CERT)",
      ca_certificate
    ))
  }
  conn <- structure(
    list(
      url = sub("/+$", "", url), token = token, timeout = timeout,
      result_key = path.expand(result_key), ca_certificate = ca_certificate
    ),
    class = "linksight_connection"
  )
  health <- hub_request(conn, "GET", "health", token = NULL)
  me <- hub_request(conn, "GET", c("users", "me"))
  conn$version <- health$version
  conn$user <- me$name
  conn$organisation <- me$organisation
  conn$roles <- as.character(unlist(me$roles))
  conn
}

#' @export
format.linksight_connection <- function(x, ...) {
  roles <- if (length(x$roles) > 0L) paste(x$roles, collapse = ", ") else "none"
  c(
    sprintf("<linksight connection to %s (hub %s)>", x$url, x$version),
    sprintf("user: %s of %s; roles: %s", x$user, x$organisation, roles)
  )
}

#' @export
print.linksight_connection <- function(x, ...) {
  cat(format(x), sep = "\n")
  invisible(x)
}

#' @importFrom utils str
#' @export
str.linksight_connection <- function(object, ...) {
  cat(format(object), sep = "\n")
  invisible(NULL)
}
