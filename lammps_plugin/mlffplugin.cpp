/* ----------------------------------------------------------------------
   mlff-distiller LAMMPS plugin: registers its styles with LAMMPS.

     plugin load /path/to/mlffplugin.so
     pair_style mliap/halo model.mliap     (any number of ranks, Python model)
     pair_style mliap/aoti model.pt2       (one rank, compiled force step, no Python)
     pair_coeff * * H O
------------------------------------------------------------------------- */

#include "lammpsplugin.h"

#include "version.h"

#include "pair_mliap_aoti.h"
#include "pair_mliap_halo.h"

using namespace LAMMPS_NS;

static Pair *mliap_halo_creator(LAMMPS *lmp)
{ return new PairMLIAPHalo(lmp); }

static Pair *mliap_aoti_creator(LAMMPS *lmp)
{ return new PairMLIAPAoti(lmp); }

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

  plugin.name = "mliap/aoti";
  plugin.info =
      "student force step compiled ahead of time (AOTInductor), run from C++ (mlff-distiller)";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &mliap_aoti_creator;
  (*register_plugin)(&plugin, lmp);
}
