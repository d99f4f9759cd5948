CREATE SCHEMA IF NOT EXISTS "gateway";
--> statement-breakpoint
CREATE TABLE "gateway"."audit" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"token" text,
	"role" text,
	"method" text NOT NULL,
	"path" text NOT NULL,
	"status" integer NOT NULL,
	"result" text NOT NULL,
	"correlation_id" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "gateway"."tokens" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"role" text NOT NULL,
	"hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE INDEX "audit_token" ON "gateway"."audit" USING btree ("token","id");--> statement-breakpoint
CREATE INDEX "audit_at" ON "gateway"."audit" USING btree ("at");--> statement-breakpoint
CREATE UNIQUE INDEX "tokens_name" ON "gateway"."tokens" USING btree ("name");--> statement-breakpoint
CREATE UNIQUE INDEX "tokens_hash" ON "gateway"."tokens" USING btree ("hash");