# The result key: the scientist's X25519 key pair, to which the stations seal
# each result. The private key is one line of base64 (32 bytes) in a file
# readable by its owner only; the Python client uses the same file and format,
# so both clients of one scientist share the key. The hub holds only the
# public key. Sealed boxes are libsodium's crypto_box_seal, which
# sodium::simple_decrypt() opens.

#' Where the result key is kept
#'
#' The file named by the environment variable `LINKSIGHT_RESULT_KEY`; else
#' `result.key` beside the client config file named by `LINKSIGHT_CONFIG`;
#' else `~/.config/linksight/result.key`. The Python client uses the same
#' rule, except that it also reads `result_key` from its config file.
#'
#' @return The path of the file, which may not exist yet.
#' @export
lks_result_key_path <- function() {
  named <- Sys.getenv("LINKSIGHT_RESULT_KEY")
  if (nzchar(named)) {
    return(path.expand(named))
  }
  config <- Sys.getenv("LINKSIGHT_CONFIG")
  if (nzchar(config)) {
    return(file.path(dirname(path.expand(config)), "result.key"))
  }
  path.expand("~/.config/linksight/result.key")
}

# Read the private key in `path`, creating the file (mode 0600) if it does
# not exist.
load_result_key <- function(path) {
  if (!file.exists(path)) {
    key <- sodium::keygen()
    dir.create(dirname(path), recursive = TRUE, showWarnings = FALSE)
    old_umask <- Sys.umask("077")
    on.exit(Sys.umask(old_umask), add = TRUE)
    writeLines(jsonlite::base64_enc(key), path)
    Sys.chmod(path, "600")
    return(key)
  }
  mode <- file.info(path)$mode
  if (.Platform$OS.type == "unix" && bitwAnd(as.integer(mode), 63L) != 0L) {
    argument_error(sprintf(
      "result key file %s has mode %s, so other users can read the key that opens your results; run: chmod 600 %s",
      path, format(mode), path
    ), call = NULL)
  }
  text <- trimws(paste(readLines(path, warn = FALSE), collapse = ""))
  key <- tryCatch(jsonlite::base64_dec(text), error = function(error) raw(0))
  if (length(key) != 32L) {
    argument_error(sprintf(
      "result key file %s does not hold a base64 X25519 private key of 32 bytes; restore it from a backup, or move it away so that a new key is created (results sealed to the old key are then lost)",
      path
    ), call = NULL)
  }
  key
}

public_key_text <- function(private_key) {
  jsonlite::base64_enc(sodium::pubkey(private_key))
}

key_fingerprint <- function(public_key_text) {
  raw_key <- tryCatch(jsonlite::base64_dec(public_key_text), error = function(e) raw(0))
  substr(paste(as.character(sodium::sha256(raw_key)), collapse = ""), 1L, 16L)
}

# Make the hub's copy of the public key match the key file, as the Python
# client does before each submission. A different registered key, as from
# another computer, is replaced with a message.
register_result_key <- function(conn) {
  public_key <- public_key_text(load_result_key(conn$result_key))
  registered <- tryCatch(
    hub_request(conn, "GET", c("users", "me", "result-key")),
    linksight_not_found = function(condition) NULL
  )
  if (!is.null(registered) && identical(registered$public_key, public_key)) {
    return(invisible(registered))
  }
  if (!is.null(registered)) {
    message(sprintf(
      "replacing the result key registered at %s (fingerprint %s) with the key in %s (fingerprint %s); results sealed to the old key open only where that key is kept",
      conn$url, registered$fingerprint, conn$result_key, key_fingerprint(public_key)
    ))
  }
  invisible(hub_request(
    conn, "PUT", c("users", "me", "result-key"),
    body = list(public_key = public_key)
  ))
}

# Open every station's sealed copy of a relayed result and return the
# document, after checking that the copies agree.
open_result <- function(conn, relayed, request_id) {
  private_key <- load_result_key(conn$result_key)
  mine <- public_key_text(private_key)
  if (!identical(relayed$recipient_key, mine)) {
    abort(sprintf(
      "the result of request %d is sealed to the key with fingerprint %s, but your result key %s has fingerprint %s; open it where that key is kept",
      request_id, key_fingerprint(relayed$recipient_key), conn$result_key,
      key_fingerprint(mine)
    ), "linksight_decryption_error", call = NULL)
  }
  texts <- vapply(names(relayed$ciphertexts), function(station) {
    sealed <- jsonlite::base64_dec(relayed$ciphertexts[[station]])
    plain <- tryCatch(
      sodium::simple_decrypt(sealed, private_key),
      error = function(error) NULL
    )
    if (is.null(plain)) {
      abort(sprintf(
        "the result of request %d from station %s failed authentication when opened with your result key: its ciphertext was altered after the station sealed it; nothing of it is shown. Report this to the hub's operator",
        request_id, station
      ), "linksight_decryption_error", call = NULL)
    }
    rawToChar(plain)
  }, "")
  if (length(texts) == 0L) {
    abort(sprintf(
      "the result of request %d contains no ciphertext; the hub relayed an incomplete result",
      request_id
    ), "linksight_decryption_error", call = NULL)
  }
  # Every station seals the same canonical JSON, so the texts are equal.
  if (length(unique(texts)) != 1L) {
    abort(sprintf(
      "the result of request %d differs between stations %s; a station misbehaved or its run went wrong, so none is shown",
      request_id, paste(names(texts), collapse = ", ")
    ), "linksight_decryption_error", call = NULL)
  }
  document <- jsonlite::parse_json(texts[[1]], simplifyVector = FALSE)
  if (!identical(document$status, relayed$status)) {
    abort(sprintf(
      "the result of request %d is %s inside its ciphertext but %s at the hub",
      request_id, document$status, relayed$status
    ), "linksight_decryption_error", call = NULL)
  }
  document
}
