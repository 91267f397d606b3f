# Results reach the client sealed to the scientist's result key: the hub
# relays ciphertext only, the package opens it, and a copy that was altered
# or sealed to another key is refused. One query serves every test here.

sealed_result <- run_query("SELECT count(*) FROM lung GROUP BY sex")

test_that("the hub relays no figure of a released result", {
  result <- sealed_result
  reply <- raw_result(attr(result, "request_id"))

  expect_equal(reply$sealed$status, "released")
  expect_null(reply$sealed$rows)
  expect_setequal(names(reply$sealed$ciphertexts), c("station-a", "station-b", "station-c"))
  # Base64 may contain any digits by chance, so only the plain fields are
  # searched for the figures.
  plain <- reply$sealed[setdiff(names(reply$sealed), c("ciphertexts", "recipient_key"))]
  relayed <- jsonlite::toJSON(plain, auto_unbox = TRUE)
  for (count in result$`count(*)`) {
    expect_false(grepl(as.character(count), relayed, fixed = TRUE))
  }
})

test_that("a result sealed to another key is refused", {
  result <- sealed_result
  other_key <- tempfile("other-result-key-")
  other <- lks_connect(hub_url, test_network$connection$scientist$token,
                       result_key = other_key)

  expect_error(
    lks_result(other, attr(result, "request_id")),
    "sealed to the key with fingerprint",
    class = "linksight_decryption_error"
  )
})

test_that("an altered ciphertext fails authentication", {
  result <- sealed_result
  relayed <- raw_result(attr(result, "request_id"))$sealed
  sealed <- jsonlite::base64_dec(relayed$ciphertexts[[2]])
  sealed[60] <- xor(sealed[60], as.raw(1))
  relayed$ciphertexts[[2]] <- jsonlite::base64_enc(sealed)

  expect_error(
    linksight:::open_result(scientist, relayed, attr(result, "request_id")),
    "from station station-b failed authentication",
    class = "linksight_decryption_error"
  )
})
