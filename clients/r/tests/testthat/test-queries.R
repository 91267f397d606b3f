# Each query runs through the hub and the stations under MPC, and its result
# is compared with the same statistic computed by R on the pooled rows.
# Counts and n must be equal; means, variances and sums may differ by the
# rounding of MPC's fixed-point numbers.

tolerance <- 1e-6

by_sex <- function(values, sex, statistic) {
  vapply(c(1, 2), function(level) {
    statistic(values[sex == level & !is.na(values)])
  }, double(1))
}

test_that("count by sex equals the pooled data", {
  result <- run_query("SELECT count(*) FROM lung GROUP BY sex")
  record_result("count by sex", result)

  expect_s3_class(result, "linksight_result")
  expect_equal(names(result), c("sex", "count(*)"))
  expect_equal(result$sex, c(1L, 2L))
  expect_identical(result$`count(*)`, as.integer(table(pooled$sex)[c("1", "2")]))
  expect_identical(attr(result, "n")$`count(*)`, result$`count(*)`)
  expect_equal(attr(result, "status"), "released")
  expect_null(attr(result, "blocked"))
})

test_that("mean and variance of age by sex equal the pooled data", {
  result <- run_query("SELECT mean(age), var(age) FROM lung GROUP BY sex")
  record_result("age by sex", result)

  expect_equal(names(result), c("sex", "mean(age)", "var(age)"))
  expect_equal(result$`mean(age)`, by_sex(pooled$age, pooled$sex, mean),
               tolerance = tolerance)
  expect_equal(result$`var(age)`, by_sex(pooled$age, pooled$sex, var),
               tolerance = tolerance)
  expect_identical(attr(result, "n")$`mean(age)`,
                   as.integer(by_sex(pooled$age, pooled$sex, length)))
  expect_identical(attr(result, "n")$`var(age)`, attr(result, "n")$`mean(age)`)
})

test_that("mean weight loss by sex leaves missing values out", {
  result <- run_query("SELECT mean(wt.loss) FROM lung GROUP BY sex")
  record_result("weight loss by sex", result)
  present <- as.integer(by_sex(pooled$wt.loss, pooled$sex, length))

  expect_equal(result$`mean(wt.loss)`, by_sex(pooled$wt.loss, pooled$sex, mean),
               tolerance = tolerance)
  expect_identical(attr(result, "n")$`mean(wt.loss)`, present)
  expect_true(all(present < table(pooled$sex)[c("1", "2")]))
})

test_that("a filter on ECOG score equals the pooled subset", {
  result <- run_query(
    "SELECT count(*), mean(age) FROM lung WHERE ph.ecog >= 2 GROUP BY sex"
  )
  record_result("poor performance score by sex", result)
  subset <- pooled[!is.na(pooled$ph.ecog) & pooled$ph.ecog >= 2, ]

  expect_identical(result$`count(*)`,
                   as.integer(table(subset$sex)[c("1", "2")]))
  expect_equal(result$`mean(age)`, by_sex(subset$age, subset$sex, mean),
               tolerance = tolerance)
  expect_identical(attr(result, "n")$`mean(age)`, result$`count(*)`)
})

test_that("IN, IS NOT NULL and two groups equal the pooled subset", {
  result <- run_query(paste(
    "SELECT mean(ph.karno), var(ph.karno) FROM lung",
    "WHERE ph.ecog IN (0, 1) and wt.loss IS NOT NULL GROUP BY sex, status"
  ))
  record_result("Karnofsky score by sex and status", result)
  subset <- pooled[pooled$ph.ecog %in% c(0, 1) & !is.na(pooled$wt.loss) &
                     !is.na(pooled$ph.karno), ]
  cells <- expand.grid(status = c(1L, 2L), sex = c(1L, 2L))[, c("sex", "status")]
  in_cell <- lapply(seq_len(nrow(cells)), function(i) {
    subset$ph.karno[subset$sex == cells$sex[i] & subset$status == cells$status[i]]
  })

  expect_equal(result$sex, cells$sex)
  expect_equal(result$status, cells$status)
  expect_equal(result$`mean(ph.karno)`, vapply(in_cell, mean, double(1)),
               tolerance = tolerance)
  expect_equal(result$`var(ph.karno)`, vapply(in_cell, var, double(1)),
               tolerance = tolerance)
  expect_identical(attr(result, "n")$`mean(ph.karno)`, lengths(in_cell))
})

test_that("sum and count of a column equal the pooled data", {
  result <- run_query("SELECT sum(meal.cal), count(meal.cal) FROM lung")
  record_result("calories", result)

  expect_equal(names(result), c("sum(meal.cal)", "count(meal.cal)"))
  expect_equal(result$`sum(meal.cal)`, sum(pooled$meal.cal, na.rm = TRUE),
               tolerance = tolerance)
  expect_identical(result$`count(meal.cal)`, sum(!is.na(pooled$meal.cal)))
  expect_identical(attr(result, "n")$`sum(meal.cal)`, sum(!is.na(pooled$meal.cal)))
})

test_that("the data frame holds the hub's numbers unchanged", {
  result <- run_query("SELECT mean(age), var(age) FROM lung WHERE ph.ecog >= 2 GROUP BY sex")
  document <- raw_result(attr(result, "request_id"))$result

  for (i in seq_along(document$rows)) {
    row <- document$rows[[i]]
    expect_identical(result$sex[i], row$sex)
    expect_identical(result$`mean(age)`[i], row$`mean(age)`)
    expect_identical(result$`var(age)`[i], row$`var(age)`)
    expect_identical(attr(result, "n")$`mean(age)`[i], row$`mean(age).n`)
    expect_identical(attr(result, "n")$`var(age)`[i], row$`var(age).n`)
  }
  expect_equal(nrow(result), length(document$rows))
  expect_equal(attr(result, "sha256"), document$sha256)
  expect_equal(attr(result, "stations"), unlist(document$stations))
  expect_equal(attr(result, "min_count"), document$min_count)
})

test_that("checks list every disclosure check with its cell", {
  result <- run_query("SELECT mean(age), var(age) FROM lung GROUP BY sex")
  checks <- attr(result, "checks")
  document <- raw_result(attr(result, "request_id"))$result

  expect_equal(names(checks), c("rule", "statistic", "sex", "passed"))
  expect_equal(nrow(checks), length(document$checks))
  expect_setequal(
    checks$rule,
    c("min_count", "variance_needs_two", "dominance", "p_percent")
  )
  expect_true(all(checks$passed))
  expect_equal(
    checks$statistic,
    vapply(document$checks, function(check) check$statistic, "")
  )
  expect_equal(checks$sex, vapply(document$checks, function(c) c$cell$sex, 1L))
})

test_that("a result prints its disclosure notes", {
  result <- run_query("SELECT count(*) FROM lung")

  printed <- capture.output(print(result))

  expect_match(printed[1], "linksight result of request [0-9]+: released")
  expect_true("SELECT count(*) FROM lung" %in% printed)
  expect_true(any(grepl("Disclosure control: 1 of 1 checks passed (rules: min_count; minimum 10 persons per figure).", printed, fixed = TRUE)))
  expect_true(any(grepl(sprintf("Each figure rests on %d persons", nrow(pooled)), printed, fixed = TRUE)))
  expect_true(any(grepl("Computed under MPC by station-a, station-b, station-c.", printed, fixed = TRUE)))
})
