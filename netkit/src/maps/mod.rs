//! Live maps of attached programs: the firewall's rules, the redirect
//! table, the numbers behind `stats`. Each is found through its program (id
//! -> map ids -> maps by name, `ProgMaps` here), so a running program's state
//! changes without pinning anything.

pub mod firewall;
pub mod prometheus;
pub mod redirect;
pub mod stats;

use aya::maps::{Map, MapData, PerCpuArray, PerCpuValues};

/// Why a program's maps could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MapsError {
    /// The program has no map of that name.
    #[error("program {prog} has no map {map} (is it the program you think it is?)")]
    Missing {
        /// The program id.
        prog: u32,
        /// The map name.
        map: String,
    },
    /// aya could not open the map.
    #[error("map {map}: {why}")]
    Aya {
        /// The map name.
        map: String,
        /// Why, in words.
        why: String,
    },
    /// The program's map list could not be read.
    #[error("reading the maps of program {prog}: {why}")]
    Program {
        /// The program id.
        prog: u32,
        /// Why, in words.
        why: String,
    },
}

/// One program's maps: (name, id).
#[derive(Clone)]
pub struct ProgMaps {
    pub(crate) prog_id: u32,
    maps: Vec<(String, u32)>,
}

pub(crate) fn aya_err(map: &str) -> impl Fn(aya::maps::MapError) -> MapsError + '_ {
    move |e| MapsError::Aya { map: map.into(), why: crate::os::errno::error_chain(&e) }
}

impl ProgMaps {
    /// Opens the maps of the loaded program `prog_id`.
    pub fn open(prog_id: u32) -> Result<Self, MapsError> {
        let maps = crate::bpf::prog_maps(prog_id)
            .map_err(|e| MapsError::Program { prog: prog_id, why: e.to_string() })?
            .into_iter()
            .map(|(info, _)| (info.name(), info.id))
            .collect();
        Ok(Self { prog_id, maps })
    }

    /// Whether the program has a map named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.maps.iter().any(|(n, _)| n == name)
    }

    /// The map named `name`, ready to be converted to a typed aya map.
    pub(crate) fn get(&self, name: &str) -> Result<Map, MapsError> {
        let id = self
            .maps
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
            .ok_or_else(|| MapsError::Missing { prog: self.prog_id, map: name.into() })?;
        let data = MapData::from_id(id).map_err(aya_err(name))?;
        Map::from_map_data(data).map_err(aya_err(name))
    }

    /// Slot `index` of a per-CPU array of u64, summed over CPUs.
    pub(crate) fn per_cpu_u64(&self, name: &str, index: u32) -> Result<u64, MapsError> {
        let arr: PerCpuArray<MapData, u64> = PerCpuArray::try_from(self.get(name)?).map_err(aya_err(name))?;
        Ok(arr.get(&index, 0).map_err(aya_err(name))?.iter().sum())
    }

    /// Sets slot `index` of a per-CPU array of u64 to 0 on every CPU.
    pub(crate) fn reset_per_cpu_u64(&self, name: &str, index: u32) -> Result<(), MapsError> {
        let mut arr: PerCpuArray<MapData, u64> = PerCpuArray::try_from(self.get(name)?).map_err(aya_err(name))?;
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| MapsError::Aya { map: name.into(), why: e.to_string() })?;
        let zeros = PerCpuValues::try_from(vec![0u64; cpus])
            .map_err(|e| MapsError::Aya { map: name.into(), why: e.to_string() })?;
        arr.set(index, zeros, 0).map_err(aya_err(name))
    }
}
