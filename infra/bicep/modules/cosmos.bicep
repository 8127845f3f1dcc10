// Cosmos DB for NoSQL: account with keys disabled, database and the orders
// container partitioned by /customerId, and data-plane role assignments.
//
// A raw resource rather than avm/res/document-db/database-account: the
// serverless/provisioned switch touches the account capabilities and the
// container options together, which reads more plainly here.

param location string
param tags object
param accountName string
param databaseName string
param containerName string

@allowed([
  'serverless'
  'provisioned'
])
param capacityMode string

@minValue(400)
param throughput int
param autoscale bool

param identityPrincipalId string
param userPrincipalId string = ''

var isServerless = capacityMode == 'serverless'

// Cosmos DB Built-in Data Contributor (data plane; not an Azure RBAC role).
var cosmosDataContributorRoleId = '00000000-0000-0000-0000-000000000002'

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  name: accountName
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    capabilities: isServerless ? [{ name: 'EnableServerless' }] : []
    // Entra ID only: no primary keys, no key-based metadata writes.
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
  }
}

// Throughput sits on the container so that the RU/s ceiling the policies
// are tuned against belongs to the one container the app writes.
var containerOptions = isServerless
  ? {}
  : (autoscale ? { autoscaleSettings: { maxThroughput: max(throughput, 1000) } } : { throughput: throughput })

resource container 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: containerName
  properties: {
    resource: {
      id: containerName
      partitionKey: {
        paths: [
          '/customerId'
        ]
        kind: 'Hash'
        version: 2
      }
    }
    options: containerOptions
  }
}

var principals = empty(userPrincipalId) ? [identityPrincipalId] : [identityPrincipalId, userPrincipalId]

resource dataContributors 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = [
  for principal in principals: {
    parent: account
    name: guid(cosmosDataContributorRoleId, principal, account.id)
    properties: {
      // Must be the fully qualified ID of the role definition in this account.
      roleDefinitionId: '${account.id}/sqlRoleDefinitions/${cosmosDataContributorRoleId}'
      principalId: principal
      scope: account.id
    }
  }
]

output endpoint string = account.properties.documentEndpoint
output accountName string = account.name
