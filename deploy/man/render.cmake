# render.cmake: writes a man page from a template and a program's --help.
#   cmake -DPROG=<binary> -DARGS="--help" -DIN=<page.in> -DOUT=<page> -P render.cmake
# The template holds troff with @HELP@ (the --help text, verbatim in a .nf
# block) and @TOKEN_HELP@ (whtunnel token --help) where they go. The help text
# is escaped for troff: backslashes doubled, a leading . or ' protected.
cmake_minimum_required(VERSION 3.18)

function(wht_help_text out)
  execute_process(COMMAND ${PROG} ${ARGN} OUTPUT_VARIABLE text ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${PROG} ${ARGN} failed (${rc}): ${err}")
  endif()
  string(REPLACE "\\" "\\e" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" text "${text}")
  string(REGEX REPLACE "\n+$" "" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

separate_arguments(args UNIX_COMMAND "${ARGS}")
wht_help_text(HELP ${args})
set(TOKEN_HELP "")
if(TOKEN)
  wht_help_text(TOKEN_HELP token --help)
endif()
file(READ ${IN} page)
string(REPLACE "@HELP@" "${HELP}" page "${page}")
string(REPLACE "@TOKEN_HELP@" "${TOKEN_HELP}" page "${page}")
file(WRITE ${OUT} "${page}")
