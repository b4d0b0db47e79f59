/* ----------------------------------------------------------------------
   mlff-distiller LAMMPS plugin: registers its styles with LAMMPS.

     plugin load /path/to/mlffplugin.so
     pair_style mliap/halo model.mliap
     pair_coeff * * H O
------------------------------------------------------------------------- */

#include "lammpsplugin.h"

#include "version.h"

#include "pair_mliap_halo.h"

using namespace LAMMPS_NS;

static Pair *mliap_halo_creator(LAMMPS *lmp)
{ return new PairMLIAPHalo(lmp); }

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  auto register_plugin = (lammpsplugin_regfunc) regfunc;

  plugin.version = LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "mliap/halo";
  plugin.info = "ML-IAP unified Python model with per-layer halo exchange (mlff-distiller)";
  plugin.author = "mlff-distiller";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &mliap_halo_creator;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);
}
