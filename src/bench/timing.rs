//! The timing protocol every measurement of a layer goes through (see the
//! [module docs](super#the-timing-protocol)).

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::gpu::engine::Engine;

/// One measurement of a layer: runs its work once and returns the time it took, measured with
/// [`timed`] (setup and clean-up stay off the clock).
pub(super) type Measurement<'a> = Box<dyn FnMut() -> Result<Duration> + 'a>;

/// The fastest, middle and slowest of one measurement's timed runs, in milliseconds; the median
/// of an even count is the mean of the middle two.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// Nothing measured.
    pub const NONE: Spread = Spread {
        min: f64::NAN,
        median: f64::NAN,
        max: f64::NAN,
    };

    /// `(median, min, max)`, each `None` when nothing was measured.
    pub fn fields(spread: Option<Spread>) -> (Option<f64>, Option<f64>, Option<f64>) {
        spread.map_or((None, None, None), |s| {
            (Some(s.median), Some(s.min), Some(s.max))
        })
    }

    /// The spread of `times` (NaN for none).
    fn of(mut times: Vec<Duration>) -> Spread {
        times.sort();
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        let (Some(first), Some(last)) = (times.first(), times.last()) else {
            return Spread::NONE;
        };
        let n = times.len();
        let median = if n % 2 == 1 {
            ms(&times[n / 2])
        } else {
            (ms(&times[n / 2 - 1]) + ms(&times[n / 2])) / 2.0
        };
        Spread {
            min: ms(first),
            median,
            max: ms(last),
        }
    }
}

/// The time `f` takes, on the one clock every measurement uses (`Instant`), and its value.
pub(super) fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(Duration, T)> {
    let start = Instant::now();
    let value = f()?;
    Ok((start.elapsed(), value))
}

/// A GPU measurement: waits for the device off the clock first, so no earlier work is counted,
/// then times `f` up to the moment the device has finished all of its work.
pub(super) fn gpu_timed<T>(
    engine: &Engine,
    f: impl FnOnce() -> Result<T>,
) -> Result<(Duration, T)> {
    engine.synchronize()?;
    timed(|| {
        let value = f()?;
        engine.synchronize()?;
        Ok(value)
    })
}

/// Keeps a timed run's value in `slot` (dropping the previous one off the clock) and returns its
/// time.
pub(super) fn keep<T>(slot: &mut Option<T>, run: Result<(Duration, T)>) -> Result<Duration> {
    let (time, value) = run?;
    *slot = Some(value);
    Ok(time)
}

/// Runs `repeat` rounds (at least one) in which each measurement runs twice, first off the
/// clock, then timed: round `r` starts with measurement `r % len`, so that none always follows
/// the same other one, and every timed run follows a run of its own (pipelines built, caches
/// warm, its worker threads awake: on a software adapter the GPU's threads and the CPU
/// baseline's share the cores). Returns each measurement's [`Spread`], in the order given.
///
/// # Errors
/// The first error of a measurement.
pub(super) fn round_robin(
    repeat: usize,
    measurements: &mut [Measurement<'_>],
) -> Result<Vec<Spread>> {
    let count = measurements.len();
    let mut times = vec![Vec::with_capacity(repeat); count];
    for round in 0..repeat.max(1) {
        for j in 0..count {
            let i = (round + j) % count;
            measurements[i]()?;
            times[i].push(measurements[i]()?);
        }
    }
    Ok(times.into_iter().map(Spread::of).collect())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Measurements that log their runs as `(measurement, run)` and report `times[m][run]` ms.
    fn scripted<'a>(log: &'a RefCell<Vec<usize>>, times: &'a [Vec<u64>]) -> Vec<Measurement<'a>> {
        (0..times.len())
            .map(|m| {
                let mut run = 0;
                Box::new(move || {
                    log.borrow_mut().push(m);
                    let ms = times[m].get(run).copied().unwrap_or(0);
                    run += 1;
                    Ok(Duration::from_millis(ms))
                }) as Measurement<'a>
            })
            .collect()
    }

    #[test]
    fn round_robin_runs_each_measurement_warm_then_timed_in_rotating_rounds() {
        let log = RefCell::new(Vec::new());
        let times = vec![vec![0; 6], vec![0; 6], vec![0; 6]];
        round_robin(3, &mut scripted(&log, &times)).unwrap();
        assert_eq!(
            log.into_inner(),
            [
                0, 0, 1, 1, 2, 2, /* round 1 */ 1, 1, 2, 2, 0, 0, /* 2 */ 2, 2, 0, 0, 1,
                1
            ]
        );
    }

    #[test]
    fn round_robin_leaves_the_warm_runs_out_and_reports_min_median_max() {
        let log = RefCell::new(Vec::new());
        // Each round's warm run (huge, to be left out), then its timed run.
        let times = [
            vec![900, 3, 900, 1, 900, 2],
            vec![900, 7, 900, 5, 900, 40, 900, 6],
        ];
        let spreads = round_robin(3, &mut scripted(&log, &times[..1])).unwrap();
        assert_eq!(
            spreads,
            [Spread {
                min: 1.0,
                median: 2.0,
                max: 3.0
            }]
        );
        let spreads = round_robin(4, &mut scripted(&log, &times[1..])).unwrap();
        // An even count's median is the mean of the middle two: (6 + 7) / 2.
        assert_eq!(
            spreads,
            [Spread {
                min: 5.0,
                median: 6.5,
                max: 40.0
            }]
        );
    }

    #[test]
    fn round_robin_runs_every_measurement_at_least_once_and_stops_at_an_error() {
        let log = RefCell::new(Vec::new());
        let times = vec![vec![2, 4]];
        let spreads = round_robin(0, &mut scripted(&log, &times)).unwrap();
        assert_eq!(
            spreads,
            [Spread {
                min: 4.0,
                median: 4.0,
                max: 4.0
            }]
        );
        let mut runs = 0;
        let mut failing: Vec<Measurement<'_>> = vec![Box::new(|| {
            runs += 1;
            if runs == 3 {
                Err(crate::error::Error::NonFinite {
                    name: "test",
                    value: f32::NAN,
                })
            } else {
                Ok(Duration::ZERO)
            }
        })];
        assert!(round_robin(5, &mut failing).is_err());
        drop(failing);
        assert_eq!(runs, 3, "stopped at the error");
    }
}
