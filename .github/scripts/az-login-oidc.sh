#!/usr/bin/env bash
# Log the Azure CLI in with a new GitHub OIDC token, as azure/login does, for jobs that outlive one login:
# the CLI cannot refresh a federated token, and Entra ID rejects it after about an hour (AADSTS700024).
# Needs `permissions: id-token: write` and AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_SUBSCRIPTION_ID in the
# environment. `az configure --defaults` (group, workspace) survives a new login.
set -euo pipefail
response="$(curl --silent --show-error --fail --header "Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN" \
  "$ACTIONS_ID_TOKEN_REQUEST_URL&audience=api://AzureADTokenExchange")"
token="$(jq --raw-output .value <<< "$response")"
az login --service-principal --username "$AZURE_CLIENT_ID" --tenant "$AZURE_TENANT_ID" \
  --federated-token "$token" --output none
az account set --subscription "$AZURE_SUBSCRIPTION_ID"
