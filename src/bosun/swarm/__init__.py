"""Docker's words over Kubernetes objects: a service is a Deployment, DaemonSet or Job
labelled ``bosun.io/service``, its tasks are its pods, a stack is a namespace labelled
``com.docker.stack.namespace``. The CLI's stack/service/node verbs read and write only
through these modules, so ``kubectl get`` and ``bosun service ls`` always agree."""
