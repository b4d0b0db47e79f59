/* ----------------------------------------------------------------------
   mlff-distiller LAMMPS plugin: input settings shared by its pair styles
------------------------------------------------------------------------- */

#include "model_settings.h"

#include "atom.h"
#include "error.h"
#include "force.h"
#include "lammps.h"
#include "update.h"

#include <cstring>

using namespace LAMMPS_NS;

void MLFFSettings::check_model_settings(LAMMPS *lmp, const char *style)
{
  Error *error = lmp->error;
  Force *force = lmp->force;
  if (force->newton_pair == 0)
    error->all(FLERR, "Pair style {} requires newton pair on (add `newton on` to the input)",
               style);
  if (strcmp(lmp->update->unit_style, "metal") != 0)
    error->all(FLERR,
               "Pair style {}: the model works in `units metal` (eV, A, ps) but this input uses "
               "`units {}`; forces would be silently wrong: use `units metal`",
               style, lmp->update->unit_style);
  // with bonds, special factors other than 1 drop bonded pairs from the neighbour list
  bool all_one = true;
  for (int k = 1; k <= 3; k++)
    all_one = all_one && force->special_lj[k] == 1.0 && force->special_coul[k] == 1.0;
  if (lmp->atom->molecular != Atom::ATOMIC && !all_one)
    error->all(FLERR,
               "Pair style {}: with bonds in the data and special_bonds factors other than 1, "
               "LAMMPS removes bonded pairs from the neighbour list and the model would see broken "
               "molecules (silently wrong forces): add `special_bonds lj/coul 1.0 1.0 1.0` before "
               "the run",
               style);
}
