//! The rank and world size a launcher gave this process, from its environment.

/// `(rank, size)` as set by Open MPI's `mpirun` (`OMPI_COMM_WORLD_RANK`/`_SIZE`), an MPICH
/// or Intel MPI launcher (`PMI_RANK`/`PMI_SIZE`) or Slurm's `srun` (`SLURM_PROCID`/
/// `SLURM_NTASKS`), checked in that order; `None` when none is set (a plain run). A value
/// that is not a number, or a rank not below the size, is an error naming the variables.
pub fn world_from_env() -> Result<Option<(usize, usize)>, String> {
    world_from(&|k| std::env::var(k).ok())
}

fn world_from(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<(usize, usize)>, String> {
    const PAIRS: [(&str, &str); 3] = [
        ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
        ("PMI_RANK", "PMI_SIZE"),
        ("SLURM_PROCID", "SLURM_NTASKS"),
    ];
    for (r, s) in PAIRS {
        let (Some(rank), Some(size)) = (get(r), get(s)) else {
            continue;
        };
        let parse = |k: &str, v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("environment variable {k}={v:?} is not a number"))
        };
        let (rank, size) = (parse(r, &rank)?, parse(s, &size)?);
        if size == 0 || rank >= size {
            return Err(format!("environment says rank {rank} of {size} ({r}, {s})"));
        }
        return Ok(Some((rank, size)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<Option<(usize, usize)>, String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        world_from(&|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn launchers_variables_give_the_world_in_order_of_preference() {
        assert_eq!(with(&[]), Ok(None));
        assert_eq!(with(&[("SLURM_PROCID", "3"), ("SLURM_NTASKS", "4")]), Ok(Some((3, 4))));
        let both = [
            ("PMI_RANK", "0"),
            ("PMI_SIZE", "2"),
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_COMM_WORLD_SIZE", "2"),
        ];
        assert_eq!(with(&both), Ok(Some((1, 2))));
        // A rank without its size does not count.
        assert_eq!(with(&[("PMI_RANK", "1")]), Ok(None));
    }

    #[test]
    fn nonsense_in_the_environment_is_an_error_naming_the_variable() {
        let e = with(&[("PMI_RANK", "x"), ("PMI_SIZE", "2")]).unwrap_err();
        assert!(e.contains("PMI_RANK") && e.contains("not a number"), "{e}");
        let e = with(&[("PMI_RANK", "2"), ("PMI_SIZE", "2")]).unwrap_err();
        assert!(e.contains("rank 2 of 2"), "{e}");
    }
}
