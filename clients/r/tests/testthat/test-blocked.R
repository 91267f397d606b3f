test_that("a crosstab with small cells is blocked with the failing cells", {
  request <- submit_and_approve("SELECT crosstab(sex, ph.ecog) FROM lung")
  finished <- lks_wait(scientist, request, interval = 0.2, progress = FALSE)
  counts <- table(
    factor(pooled$sex, levels = 1:2),
    factor(pooled$ph.ecog, levels = 0:4)
  )
  small <- as.data.frame(counts, stringsAsFactors = FALSE)
  small <- small[small$Freq < 10, ]
  small <- small[order(small$Var1, small$Var2), ]

  expect_warning(
    result <- lks_result(scientist, request),
    "blocked by disclosure control, rule min_count: 4 figure\\(s\\) rest on fewer than 10 persons",
    class = "linksight_blocked"
  )
  record_result("sex by ECOG score", result)
  checks <- attr(result, "checks")
  failed <- checks[!checks$passed, ]

  expect_equal(finished$state, "blocked_by_disclosure_control")
  expect_equal(attr(result, "status"), "blocked")
  expect_equal(nrow(result), 0L)
  expect_equal(names(result), c("sex", "ph.ecog", "count(*)"))
  expect_equal(attr(result, "blocked")$rule, "min_count")
  expect_equal(attr(result, "blocked")$failed, nrow(small))
  expect_equal(nrow(checks), 10L)
  expect_equal(failed$sex, as.integer(small$Var1))
  expect_equal(failed$ph.ecog, as.integer(small$Var2))
})

test_that("a blocked result prints the rule instead of rows", {
  request <- submit_and_approve("SELECT crosstab(sex, ph.ecog) FROM lung")
  lks_wait(scientist, request, interval = 0.2, progress = FALSE)
  result <- suppressWarnings(lks_result(scientist, request))

  printed <- capture.output(print(result))

  expect_match(printed[1], "request [0-9]+: blocked>$")
  expect_match(printed[3], "^blocked by disclosure control, rule min_count")
  expect_match(printed[4], "Disclosure control: 6 of 10 checks passed", fixed = TRUE)
})
