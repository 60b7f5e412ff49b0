// The standard top-level properties of every kind, with the descriptions that controller-gen emits
// for metav1.TypeMeta and metav1.ObjectMeta.

export const apiVersionProperty = {
  type: "string",
  description: `APIVersion defines the versioned schema of this representation of an object.
Servers should convert recognized schemas to the latest internal value, and
may reject unrecognized values.
More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources`,
} as const;

export const kindProperty = {
  type: "string",
  description: `Kind is a string value representing the REST resource this object represents.
Servers may infer this from the endpoint the client submits requests to.
Cannot be updated.
In CamelCase.
More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds`,
} as const;

// kube-apiserver validates metadata itself, so a CRD schema only says that it is an object.
export const metadataProperty = { type: "object" } as const;

export const conditionStatuses = ["True", "False", "Unknown"] as const;

// metav1.Condition, as controller-gen renders it.
export const conditionSchema = {
  type: "object",
  description: "Condition contains details for one aspect of the current state of this API Resource.",
  required: ["lastTransitionTime", "message", "reason", "status", "type"],
  properties: {
    lastTransitionTime: {
      type: "string",
      format: "date-time",
      description: `lastTransitionTime is the last time the condition transitioned from one status to another.
This should be when the underlying condition changed.  If that is not known, then using the time when the API field changed is acceptable.`,
    },
    message: {
      type: "string",
      description: `message is a human readable message indicating details about the transition.
This may be an empty string.`,
      maxLength: 32768,
    },
    observedGeneration: {
      type: "integer",
      format: "int64",
      description: `observedGeneration represents the .metadata.generation that the condition was set based upon.
For instance, if .metadata.generation is currently 12, but the .status.conditions[x].observedGeneration is 9, the condition is out of date
with respect to the current state of the instance.`,
      minimum: 0,
    },
    reason: {
      type: "string",
      description: `reason contains a programmatic identifier indicating the reason for the condition's last transition.
Producers of specific condition types may define expected values and meanings for this field,
and whether the values are considered a guaranteed API.
The value should be a CamelCase string.
This field may not be empty.`,
      minLength: 1,
      maxLength: 1024,
      pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    },
    status: {
      type: "string",
      description: "status of the condition, one of True, False, Unknown.",
      enum: conditionStatuses,
    },
    type: {
      type: "string",
      description: "type of condition in CamelCase or in foo.example.com/CamelCase.",
      maxLength: 316,
      pattern:
        "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    },
  },
} as const;
