/* -*- c++ -*- ----------------------------------------------------------
   mlff-distiller LAMMPS plugin: the input settings every pair style of the
   plugin needs (newton on, units metal, bonded pairs kept in the list).
------------------------------------------------------------------------- */

#ifndef LMP_MLFF_MODEL_SETTINGS_H
#define LMP_MLFF_MODEL_SETTINGS_H

namespace LAMMPS_NS {
class LAMMPS;
namespace MLFFSettings {

  // stops with error->all, naming the fix, on settings under which the model's forces would be
  // wrong or silently wrong; style is the pair style's name for the message
  void check_model_settings(LAMMPS *lmp, const char *style);

}    // namespace MLFFSettings
}    // namespace LAMMPS_NS

#endif
