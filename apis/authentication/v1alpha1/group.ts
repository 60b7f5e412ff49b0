export const group = "authentication.concierge.pinniped.dev";
export const version = "v1alpha1";

// Both authenticator kinds share these categories, so `kubectl get pinniped-authenticators` lists both.
export const categories = ["pinniped", "pinniped-authenticator", "pinniped-authenticators"] as const;
