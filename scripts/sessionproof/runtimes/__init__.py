"""The runtimes behind one interface: local processes (supervisord, network namespaces), compose and k8s."""
