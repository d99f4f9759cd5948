CREATE TABLE "dhcp_db"."allocations" (
	"id" integer PRIMARY KEY NOT NULL,
	"node_id" integer NOT NULL,
	"summary" jsonb NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL,
	"source_time" timestamp (3) with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "dhcp_db"."leases" (
	"address" "inet" PRIMARY KEY NOT NULL,
	"mac" text NOT NULL,
	"network_id" integer NOT NULL,
	"range" text NOT NULL,
	"node_id" integer,
	"hostname" text,
	"state" text NOT NULL,
	"expires_at" timestamp (3) with time zone NOT NULL,
	"interface" text,
	"relay" text,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "dhcp_db"."meta" (
	"key" text PRIMARY KEY NOT NULL,
	"value" jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "dhcp_db"."networks" (
	"id" integer PRIMARY KEY NOT NULL,
	"detail" jsonb NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL,
	"source_time" timestamp (3) with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "dhcp_db"."nodes" (
	"id" integer PRIMARY KEY NOT NULL,
	"summary" jsonb NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL,
	"source_time" timestamp (3) with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "allocations_node_idx" ON "dhcp_db"."allocations" USING btree ("node_id");--> statement-breakpoint
CREATE INDEX "leases_mac_idx" ON "dhcp_db"."leases" USING btree ("mac");--> statement-breakpoint
CREATE INDEX "leases_bound_expiry_idx" ON "dhcp_db"."leases" USING btree ("expires_at") WHERE state in ('bound', 'declined');