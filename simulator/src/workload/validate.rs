//! Checking a [`WorkloadConfig`] before generating from it.

use super::config::{
    ArrivalConfig, LengthConfig, PrefixConfig, SessionConfig, SharedPrefixConfig, TraceConfig,
    TraceFormat, WorkloadConfig,
};
use super::error::WorkloadError;
use super::{mooncake, trace_csv};

/// Most values a zipf length law may range over (its generator sums and may permute them all).
const MAX_ZIPF_RANGE: u32 = 1 << 24;
/// Most shared prompts of `[workload.prefix]` (its sampler keeps a table of them).
const MAX_PREFIXES: u32 = 10_000_000;

impl WorkloadConfig {
    /// Checks every field and opens every trace file the configuration names (reading its
    /// header and first row), so that a bad value fails before a simulation starts.
    ///
    /// Errors name the field or file and say how to fix it.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        if self.num_requests == Some(0) {
            return Err(WorkloadError::field(
                "workload.num_requests",
                "is 0",
                "give at least 1 request, or leave it out",
            ));
        }
        if let Some(d) = self.duration_s {
            positive_finite(
                "workload.duration_s",
                d,
                "a simulated duration in seconds, e.g. 600",
            )?;
        }
        if self.max_tokens < 2 {
            return Err(WorkloadError::field(
                "workload.max_tokens",
                format!("is {}", self.max_tokens),
                "a request needs at least 1 prompt and 1 output token: give 2 or more (e.g. 4096)",
            ));
        }
        match &self.trace {
            Some(trace) => self.validate_replay(trace),
            None => self.validate_synthetic(),
        }
    }

    /// The longest prompt plus output any generated request can have, tokens: `max_tokens`,
    /// which every generator clips to. The memory planner sizes a request slot with it, as
    /// Vidur's planner does with its `max_tokens`.
    pub fn max_request_tokens(&self) -> u32 {
        self.max_tokens
    }

    /// The files the workload reads, each with the flag that names it.
    pub fn input_files(&self) -> Vec<(&'static str, &std::path::Path)> {
        let mut files = Vec::new();
        if let Some(t) = &self.trace {
            files.push(("--trace", t.file.as_path()));
        }
        if let ArrivalConfig::Trace { trace_file, .. } = &self.arrival {
            files.push(("--arrival-trace", trace_file.as_path()));
        }
        if let LengthConfig::Trace { trace_file, .. } = &self.lengths {
            files.push(("--length-trace", trace_file.as_path()));
        }
        files
    }

    fn validate_replay(&self, trace: &TraceConfig) -> Result<(), WorkloadError> {
        let mut unused = Vec::new();
        if self.arrival != ArrivalConfig::default() {
            unused.push("[workload.arrival]");
        }
        if self.lengths != LengthConfig::default() {
            unused.push("[workload.lengths]");
        }
        if self.prefix.is_some() {
            unused.push("[workload.prefix]");
        }
        if self.sessions.is_some() {
            unused.push("[workload.sessions]");
        }
        if !unused.is_empty() {
            return Err(WorkloadError::Conflict(format!(
                "[workload.trace] replays arrival times, lengths and prefixes from {}, so {} would be ignored; \
                 remove {} (or remove [workload.trace] for a synthetic workload)",
                trace.file.display(),
                unused.join(" and "),
                if unused.len() == 1 { "it" } else { "them" }
            )));
        }
        non_empty_path("workload.trace.file", &trace.file, "--trace FILE")?;
        positive_finite(
            "workload.trace.time_scale_factor",
            trace.time_scale_factor,
            "e.g. 1 to replay at the recorded times, 0.5 to double the rate",
        )?;
        positive_finite(
            "workload.trace.prefill_scale_factor",
            trace.prefill_scale_factor,
            "e.g. 1",
        )?;
        positive_finite(
            "workload.trace.decode_scale_factor",
            trace.decode_scale_factor,
            "e.g. 1",
        )?;
        match trace.resolved_format() {
            TraceFormat::Mooncake => {
                if trace.block_tokens == 0 {
                    return Err(WorkloadError::field(
                        "workload.trace.block_tokens",
                        "is 0",
                        "give the trace's hash block size (512 for the published Mooncake traces)",
                    ));
                }
                if trace.prefill_scale_factor != 1.0 || trace.decode_scale_factor != 1.0 {
                    return Err(WorkloadError::Conflict(format!(
                        "Mooncake trace {}: prefill_scale_factor and decode_scale_factor must be 1 \
                         (scaling would break the trace's hash blocks); remove them",
                        trace.file.display()
                    )));
                }
                mooncake::check_file(&trace.file)
            }
            _ => trace_csv::check_columns(
                &trace.file,
                &trace_csv::REPLAY_COLUMNS,
                "a replay trace needs arrived_at (seconds), num_prefill_tokens and num_decode_tokens \
                 (a file of lengths without arrival times can be a length trace instead: \
                 --length-trace FILE, or [workload.lengths] kind = \"trace\")",
            ),
        }
    }

    fn validate_pool(&self, pool: &SharedPrefixConfig) -> Result<(), WorkloadError> {
        if self.lengths != LengthConfig::default()
            || self.prefix.is_some()
            || self.sessions.is_some()
        {
            return Err(WorkloadError::Conflict(
                "[workload.shared_prefix] sets every prompt and output length and the shared prefixes, so \
                 [workload.lengths], [workload.prefix] and [workload.sessions] would be ignored; remove them"
                    .to_string(),
            ));
        }
        for (field, v) in [
            ("workload.shared_prefix.num_groups", pool.num_groups),
            (
                "workload.shared_prefix.prompts_per_group",
                pool.prompts_per_group,
            ),
            ("workload.shared_prefix.output_tokens", pool.output_tokens),
        ] {
            at_least_one(field, v)?;
        }
        let total = u64::from(pool.system_prompt_tokens)
            + u64::from(pool.question_tokens)
            + u64::from(pool.extra_prompt_tokens);
        if total == 0 {
            return Err(WorkloadError::field(
                "workload.shared_prefix.question_tokens",
                "with system_prompt_tokens and extra_prompt_tokens gives an empty prompt",
                "give the prompts at least 1 token",
            ));
        }
        if total + u64::from(pool.output_tokens) > u64::from(self.max_tokens) {
            return Err(WorkloadError::field(
                "workload.shared_prefix.output_tokens",
                format!(
                    "plus the prompt ({total} tokens) is more than workload.max_tokens = {}",
                    self.max_tokens
                ),
                "shorten the prompts or outputs, or raise workload.max_tokens",
            ));
        }
        Ok(())
    }

    fn validate_synthetic(&self) -> Result<(), WorkloadError> {
        match &self.arrival {
            ArrivalConfig::Stages { stages } => {
                if stages.is_empty() {
                    return Err(WorkloadError::field(
                        "workload.arrival.stages",
                        "is empty",
                        "give at least one stage, e.g. --rate-stages 8:600,20:600",
                    ));
                }
                for st in stages {
                    positive_finite(
                        "workload.arrival.stages[].qps",
                        st.qps,
                        "a mean rate in requests per second, e.g. 8",
                    )?;
                    positive_finite(
                        "workload.arrival.stages[].duration_s",
                        st.duration_s,
                        "a stage length in seconds, e.g. 600",
                    )?;
                }
            }
            ArrivalConfig::Poisson { qps } => positive_finite(
                "workload.arrival.qps",
                *qps,
                "a mean rate in requests per second, e.g. 6",
            )?,
            ArrivalConfig::Gamma { qps, cv } => {
                positive_finite(
                    "workload.arrival.qps",
                    *qps,
                    "a mean rate in requests per second, e.g. 6",
                )?;
                positive_finite(
                    "workload.arrival.cv",
                    *cv,
                    "a coefficient of variation of inter-arrival times, e.g. 2 for bursty traffic (1 is Poisson)",
                )?;
            }
            ArrivalConfig::Static => {
                if self.num_requests.is_none() && self.duration_s.is_some() {
                    return Err(WorkloadError::Conflict(
                        "static arrivals put every request at t = 0, so workload.duration_s cannot bound them; \
                         set workload.num_requests instead"
                            .to_string(),
                    ));
                }
            }
            ArrivalConfig::Trace {
                trace_file,
                column,
                time_scale_factor,
            } => {
                non_empty_path(
                    "workload.arrival.trace_file",
                    trace_file,
                    "--arrival-trace FILE",
                )?;
                positive_finite(
                    "workload.arrival.time_scale_factor",
                    *time_scale_factor,
                    "e.g. 1 to keep the recorded times, 0.5 to double the rate",
                )?;
                trace_csv::check_columns(
                    trace_file,
                    &[column.as_str()],
                    "set workload.arrival.column to the column holding arrival times in seconds",
                )?;
            }
        }
        if let Some(pool) = &self.shared_prefix {
            return self.validate_pool(pool);
        }
        let prefix_tokens = match &self.prefix {
            Some(prefix) => {
                self.validate_prefix(prefix)?;
                prefix.prefix_tokens
            }
            None => 0,
        };
        // The length law's upper bound: what is left of max_tokens after the shared prefix.
        let cap = self.max_tokens - prefix_tokens;
        let cap_source = if prefix_tokens > 0 {
            format!("workload.max_tokens − workload.prefix.prefix_tokens = {cap}")
        } else {
            format!("workload.max_tokens = {cap}")
        };
        match &self.lengths {
            LengthConfig::Fixed {
                prefill_tokens,
                decode_tokens,
            } => {
                at_least_one("workload.lengths.prefill_tokens", *prefill_tokens)?;
                at_least_one("workload.lengths.decode_tokens", *decode_tokens)?;
                if u64::from(*prefill_tokens) + u64::from(*decode_tokens) > u64::from(cap) {
                    return Err(WorkloadError::field(
                        "workload.lengths.prefill_tokens",
                        format!(
                            "plus decode_tokens is {} tokens, more than {cap_source}",
                            u64::from(*prefill_tokens) + u64::from(*decode_tokens)
                        ),
                        "shorten the requests or raise workload.max_tokens",
                    ));
                }
            }
            LengthConfig::Uniform {
                min_tokens,
                max_tokens,
                pd_ratio,
            } => {
                self.validate_range(*min_tokens, *max_tokens, cap, &cap_source)?;
                positive_finite(
                    "workload.lengths.pd_ratio",
                    *pd_ratio,
                    "a prompt-to-output ratio, e.g. 20",
                )?;
            }
            LengthConfig::Zipf {
                min_tokens,
                max_tokens,
                pd_ratio,
                theta,
                ..
            } => {
                self.validate_range(*min_tokens, *max_tokens, cap, &cap_source)?;
                positive_finite(
                    "workload.lengths.pd_ratio",
                    *pd_ratio,
                    "a prompt-to-output ratio, e.g. 20",
                )?;
                let range = max_tokens.unwrap_or(cap) - min_tokens + 1;
                if range > MAX_ZIPF_RANGE {
                    return Err(WorkloadError::field(
                        "workload.lengths.max_tokens",
                        format!("gives zipf lengths a range of {range} values, more than {MAX_ZIPF_RANGE}"),
                        "narrow the range with workload.lengths.min_tokens and max_tokens",
                    ));
                }
                if !(theta.is_finite() && *theta > 0.0 && *theta < 1.0) {
                    return Err(WorkloadError::field(
                        "workload.lengths.theta",
                        format!("is {theta}"),
                        "the YCSB Zipf generator needs a skew strictly between 0 and 1, e.g. 0.6",
                    ));
                }
            }
            LengthConfig::Trace {
                trace_file,
                prefill_scale_factor,
                decode_scale_factor,
            } => {
                non_empty_path(
                    "workload.lengths.trace_file",
                    trace_file,
                    "--length-trace FILE",
                )?;
                positive_finite(
                    "workload.lengths.prefill_scale_factor",
                    *prefill_scale_factor,
                    "e.g. 1",
                )?;
                positive_finite(
                    "workload.lengths.decode_scale_factor",
                    *decode_scale_factor,
                    "e.g. 1",
                )?;
                trace_csv::check_columns(
                    trace_file,
                    &trace_csv::LENGTH_COLUMNS,
                    "a length trace needs num_prefill_tokens and num_decode_tokens",
                )?;
            }
        }
        if let Some(sessions) = &self.sessions {
            validate_sessions(sessions)?;
        }
        Ok(())
    }

    fn validate_prefix(&self, prefix: &PrefixConfig) -> Result<(), WorkloadError> {
        if prefix.num_prefixes == 0 {
            return Err(WorkloadError::field(
                "workload.prefix.num_prefixes",
                "is 0",
                "give the number of distinct shared prompts (≥ 1), or remove [workload.prefix]",
            ));
        }
        if prefix.num_prefixes > MAX_PREFIXES {
            return Err(WorkloadError::field(
                "workload.prefix.num_prefixes",
                format!("is {}, more than {MAX_PREFIXES}", prefix.num_prefixes),
                "use fewer shared prompts (every prompt has an entry in a sampling table)",
            ));
        }
        at_least_one("workload.prefix.prefix_tokens", prefix.prefix_tokens)?;
        if u64::from(prefix.prefix_tokens) + 2 > u64::from(self.max_tokens) {
            return Err(WorkloadError::field(
                "workload.prefix.prefix_tokens",
                format!(
                    "is {}, leaving no room for a unique prompt token and an output token within workload.max_tokens = {}",
                    prefix.prefix_tokens, self.max_tokens
                ),
                "shorten the prefix or raise workload.max_tokens",
            ));
        }
        if !(prefix.zipf_theta.is_finite() && prefix.zipf_theta >= 0.0) {
            return Err(WorkloadError::field(
                "workload.prefix.zipf_theta",
                format!("is {}", prefix.zipf_theta),
                "give a Zipf exponent ≥ 0 (0 is uniform; 1 is the classic Zipf law)",
            ));
        }
        Ok(())
    }

    fn validate_range(
        &self,
        min_tokens: u32,
        max_tokens: Option<u32>,
        cap: u32,
        cap_source: &str,
    ) -> Result<(), WorkloadError> {
        if min_tokens < 2 {
            return Err(WorkloadError::field(
                "workload.lengths.min_tokens",
                format!("is {min_tokens}"),
                "a request needs at least 1 prompt and 1 output token: give 2 or more",
            ));
        }
        if let Some(max) = max_tokens {
            if max > cap {
                return Err(WorkloadError::field(
                    "workload.lengths.max_tokens",
                    format!("is {max}, more than {cap_source}"),
                    "lower it (or leave it out to use the whole range)",
                ));
            }
            if min_tokens > max {
                return Err(WorkloadError::field(
                    "workload.lengths.min_tokens",
                    format!("is {min_tokens}, more than workload.lengths.max_tokens = {max}"),
                    "make min_tokens ≤ max_tokens",
                ));
            }
        }
        if min_tokens > cap {
            return Err(WorkloadError::field(
                "workload.lengths.min_tokens",
                format!("is {min_tokens}, more than the largest length {cap_source}"),
                "lower min_tokens or raise workload.max_tokens",
            ));
        }
        Ok(())
    }
}

fn validate_sessions(sessions: &SessionConfig) -> Result<(), WorkloadError> {
    if sessions.min_turns == 0 {
        return Err(WorkloadError::field(
            "workload.sessions.min_turns",
            "is 0",
            "a session has at least 1 turn",
        ));
    }
    if sessions.max_turns < sessions.min_turns {
        return Err(WorkloadError::field(
            "workload.sessions.max_turns",
            format!(
                "is {}, less than min_turns = {}",
                sessions.max_turns, sessions.min_turns
            ),
            "make max_turns ≥ min_turns",
        ));
    }
    if !(sessions.think_time_s.is_finite() && sessions.think_time_s >= 0.0) {
        return Err(WorkloadError::field(
            "workload.sessions.think_time_s",
            format!("is {}", sessions.think_time_s),
            "give a mean think time in seconds ≥ 0, e.g. 10",
        ));
    }
    Ok(())
}

fn positive_finite(field: &'static str, value: f64, fix: &str) -> Result<(), WorkloadError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(WorkloadError::field(
            field,
            format!("is {value}, but must be a finite number > 0"),
            format!("give {fix}"),
        ))
    }
}

fn non_empty_path(
    field: &'static str,
    path: &std::path::Path,
    flag: &str,
) -> Result<(), WorkloadError> {
    if path.as_os_str().is_empty() {
        Err(WorkloadError::field(
            field,
            "is empty",
            format!("give the trace file ({flag} on the command line)"),
        ))
    } else {
        Ok(())
    }
}

fn at_least_one(field: &'static str, value: u32) -> Result<(), WorkloadError> {
    if value == 0 {
        Err(WorkloadError::field(field, "is 0", "give at least 1 token"))
    } else {
        Ok(())
    }
}
