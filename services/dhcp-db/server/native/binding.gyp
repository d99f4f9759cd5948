{
  "targets": [
    {
      "target_name": "dhcp_socket",
      "sources": ["dhcp_socket.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wshadow", "-Wno-unused-parameter"]
    }
  ]
}
