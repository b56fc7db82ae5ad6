# Turns a file into a C source defining it as a NUL-terminated byte array:
#   const char <NAME>[] = {...bytes..., 0};
#   const unsigned long <NAME>_len = <size>;   (the size without the NUL)
# CMake only (no xxd). Usage:
#   cmake -DIN=node/dashboard.html -DOUT=dashboard_html.c -DNAME=node_dashboard_html -P node/embed.cmake
if(NOT DEFINED IN OR NOT DEFINED OUT OR NOT DEFINED NAME)
  message(FATAL_ERROR "embed.cmake: pass -DIN=<file> -DOUT=<file.c> -DNAME=<symbol>")
endif()
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR size "${hexlen} / 2")
# every byte as 0xNN, (char) cast for 0x80..0xff so no conversion warning
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "0x([89a-f][0-9a-f])," "(char)0x\\1," bytes "${bytes}")
# 16 bytes a line
string(REPEAT "[^,]+," 16 line)
string(REGEX REPLACE "(${line})" "\\1\n    " bytes "${bytes}")
get_filename_component(src "${IN}" NAME)
set(text "/* Generated from ${src} by node/embed.cmake: do not edit. */\n")
string(APPEND text "extern const char ${NAME}[];\n")
string(APPEND text "extern const unsigned long ${NAME}_len;\n")
string(APPEND text "const char ${NAME}[] = {\n    ${bytes}0};\n")
string(APPEND text "const unsigned long ${NAME}_len = ${size};\n")
file(WRITE "${OUT}" "${text}")
