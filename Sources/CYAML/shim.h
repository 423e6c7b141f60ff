// libyaml's event parser, for reading stub files written in YAML.
#include <yaml.h>
